"""The network edge: one TCP connection's read loop, framing and flushing
(``connection``), and the listening sockets with the connection registry,
its limits and timeouts (``listener``).

May depend on ``protocol`` and the layers below it (``delivery``, ``domain``);
only ``app``, ``ops`` and ``irc`` sit above it. What a connection needs of
its owner is the ``ConnectionHost`` Protocol defined here, so nothing in
this package imports the layers above."""
