"""Content beyond plain text: files and their blob stores, previews (run in a
child process) and stickers.

Beside ``crypto``, above ``delivery`` and ``domain``, which it may depend on;
never on ``protocol`` or the layers above it."""
