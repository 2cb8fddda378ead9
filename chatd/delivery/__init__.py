"""Delivery: the message bus (``bus``), room fan-out by the turn (``feed``),
the outgoing queues and the message issuer.

Sits just above ``domain`` and may depend only on it (and on ``chatd.config``,
``chatd.errors``, ``storage``). It owns who is connected where (the bus's
routes); the front ends' sessions bring the rendering of their output style."""
