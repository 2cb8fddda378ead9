"""The application: the composition root (``compose.build_app``: every part
built and wired in one place, reloads registered with the keys each reads) and
the one lifecycle object (``app.App``: start, serve, reload, ordered stop).
The top layer: it may import every other layer, and it alone imports the
``commands`` package."""
