"""callbridge: a phone call between two languages, translated both ways in real time."""

__version__ = "0.1.0"
