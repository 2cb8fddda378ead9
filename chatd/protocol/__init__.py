"""The line and JSON protocol: codec, rendering and the client's output style,
sessions, the command registry and dispatcher, parameter parsing, and uploads.

May depend on ``content``, ``crypto``, ``delivery`` and ``domain`` below it,
never on ``net``, ``irc``, ``ops`` or ``app`` above it, nor on ``commands``."""
