"""Serving bundles: one directory with a manifest, the index, the forests,
the item table and the candidate lists (see manifest.py)."""

from engine.bundle.build import build_bundle, with_surfaces
from engine.bundle.manifest import Manifest, read_manifest

__all__ = ["build_bundle", "with_surfaces", "Manifest", "read_manifest"]
