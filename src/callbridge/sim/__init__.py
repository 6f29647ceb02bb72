"""Offline simulators that speak the real Twilio and Palabra protocols (for tests and demos)."""
