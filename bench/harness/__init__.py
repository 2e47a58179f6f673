"""Shared pieces of the benchmarks: the servers they start, timing on a shared machine, reports.

The scripts in ``bench/`` run as ``python bench/<script>.py``, so this folder is importable as
``harness`` without installing anything beyond the project itself.
"""
