"""Synthetic data sets with known structure, for tests, benchmarks and the quickstart."""

from engine.datasets.catalogue import Catalogue, make_catalogue
from engine.datasets.world import World, make_world

__all__ = ["Catalogue", "World", "make_catalogue", "make_world"]
