"""The benchmark (scripts/bench.py), run once with --quick as a smoke test."""
