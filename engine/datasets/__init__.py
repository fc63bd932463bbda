"""Synthetic data sets with known structure, for tests, benchmarks and the quickstart."""

from engine.datasets.catalogue import Catalogue, make_catalogue

__all__ = ["Catalogue", "make_catalogue"]
