"""Operations: the control socket and ``chatctl``, ``chatctl top``, systemd
notification, metrics, backups, housekeeping and the log format.

Below ``app`` only: it may depend on ``irc``, ``net``, ``protocol`` and the
layers under them, never on ``commands``."""
