"""Benchmarks of a4c-backup: run with `python bench/run.py`, never in the test suite."""
