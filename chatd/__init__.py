"""chatd: a chat daemon speaking a plain-text line protocol over TCP."""

__version__ = "0.1.0"
