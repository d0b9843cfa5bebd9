"""Vestnik: Russian text or voice to a lip-synced talking-head video."""

__version__ = "0.1.0"
