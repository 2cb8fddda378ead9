"""The domain: accounts, rooms and their rules, permissions, moderation,
presence, notifications, rate limits, tokens and the clock.

The bottom layer: it depends only on ``chatd.config``, ``chatd.errors`` and
``storage``, never on ``commands`` or the layers above it (an import contract
in setup.cfg says so). What it needs of connections and of the bus it declares
itself, in ``ports``: the front ends' sessions and the delivery layer's bus
implement those Protocols. There too: where message ids come from (a
``Sequencer``) and where a decision about a room or an account is made once
(``RoomTransactions``, ``AccountTransactions``), which ``sequence`` and
``transactions`` implement in this process's memory."""
