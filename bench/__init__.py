"""Benchmarks of the directory and of peer transfers, each against a reference measured in the same run.

Run them all with `python -m bench.run` (or `make bench`); `--quick` is the two-minute sanity run.
"""
