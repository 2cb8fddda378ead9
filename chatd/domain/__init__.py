"""The domain: accounts, rooms and their rules, permissions, moderation,
presence, notifications, rate limits, tokens and the clock.

The bottom layer: it should depend only on ``chatd.config``, ``chatd.errors``
and ``storage``, never on ``commands`` or the layers above it."""
