"""Benchmarks of rank-engine against peer libraries (see bench/README.md)."""
