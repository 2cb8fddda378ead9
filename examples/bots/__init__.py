"""Example bots built on chatd.client.sdk; each runs as a script (see docs/SDK.md)."""
