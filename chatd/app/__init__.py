"""The application: the composition root (``compose.build_server``), the server
that owns the listeners and the domain (``server``) and the daemon around it
(``daemon``: signals, reload, systemd). The top layer: it may import every other
layer, and it alone imports the ``commands`` package."""
