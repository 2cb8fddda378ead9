"""The web front: one HTTP listener for browsers and integrations (``web.enabled``).

The browser client's files, the line protocol and IRC over WebSocket (as
connections of the same host as TCP's), the HTTP API with its OpenAPI
document, and incoming webhooks. It needs the optional ``web`` extra
(the ``websockets`` library), imported only when the listener is on.
"""
