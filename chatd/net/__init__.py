"""The network edge: one TCP connection's read loop, framing and flushing.

May depend on ``protocol`` and the layers below it (``delivery``, ``domain``);
only ``app``, ``ops`` and ``irc`` sit above it."""
