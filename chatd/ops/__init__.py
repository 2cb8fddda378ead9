"""Operations: the control socket and ``chatctl``, ``chatctl top``, systemd
notification, metrics, backups, housekeeping and the log format.

Below ``app`` only: it may depend on ``irc``, ``net``, ``protocol`` and the
layers under them, never on ``commands``. What it needs of the running
daemon it states as Protocols (``admin.Admin``, ``leader.Leader``); the
composition root passes objects that fit, so it never imports ``app``."""
