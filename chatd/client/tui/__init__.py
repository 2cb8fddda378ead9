"""chatd-client: the terminal client (``app``) over a testable session (``session``)."""
