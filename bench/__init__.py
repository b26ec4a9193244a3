"""Benchmarks against the real local stack (not part of the test suite); see bench/README.md."""
