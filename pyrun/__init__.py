"""pyrun: a daemonless container engine for Linux, Python over a small C core."""

__version__ = "0.1.0"
