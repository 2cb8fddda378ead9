"""Examples that use chatd as a library."""
