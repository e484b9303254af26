"""Benchmarks through the whole daemon (not tests: they measure, and write bench/results/)."""
