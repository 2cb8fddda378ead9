"""The SDK, the example bots and the full-screen terminal client."""
