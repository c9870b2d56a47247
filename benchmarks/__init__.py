"""Benchmarks: each script times our implementation against a plain reference in the same run."""
