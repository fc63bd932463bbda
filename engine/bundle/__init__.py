"""Serving bundles: one directory with a manifest, the index, the forests,
the item table and the candidate lists (see manifest.py)."""

from engine.bundle.build import build_bundle
from engine.bundle.manifest import Manifest, read_manifest

__all__ = ["build_bundle", "Manifest", "read_manifest"]
