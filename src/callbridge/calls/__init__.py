"""Calls: the supervisor that admits them and the per-call nursery that runs them."""
