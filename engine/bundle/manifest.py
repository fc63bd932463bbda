"""The bundle manifest: what a serving bundle holds and how to check it.

A bundle is a directory::

    manifest.json        this file (msgspec JSON)
    items.arrow          the item table (Arrow IPC file): item_id, filter attributes, feature columns
    item_vectors.safetensors  float32 (n_items, dim), row i = item row i (zeros: no embedding)
    index.rei            VectorIndex over the rows that have an embedding; its ids are item rows
    candidates.safetensors    popular / new item lists (engine/ranking/popularity.py)
    forest.ref           the compiled model heads (absent in a bundle without models)
    users.arrow, user_vectors.safetensors   optional user table (user_id, attributes) and vectors

Every artefact's size and SHA-256 are in the manifest; `load` refuses a
bundle whose files are missing, changed or inconsistent with each other.
"""

from __future__ import annotations

import hashlib
import os

import msgspec

from engine.errors import BundleError
from engine.features import FeatureSpec
from engine.ranking.settings import SurfaceSettings

FORMAT = "rank-engine.bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class Artefact(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    bytes: int
    sha256: str


class Manifest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: str
    format_version: int
    bundle_version: str
    created_at: str
    artefacts: dict[str, Artefact]
    feature_spec: FeatureSpec
    surfaces: dict[str, SurfaceSettings]
    heads: list[str]
    model_versions: dict[str, str]
    filter_columns: list[str]
    user_columns: list[str]
    dim: int
    n_items: int


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def describe(folder: str, name: str) -> Artefact:
    path = os.path.join(folder, name)
    return Artefact(path=name, bytes=os.path.getsize(path), sha256=file_digest(path))


def read_manifest(folder: str) -> Manifest:
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise BundleError(f"{folder}: not a bundle (no {MANIFEST})") from None
    try:
        manifest = msgspec.json.decode(raw, type=Manifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise BundleError(f"{path}: invalid bundle manifest ({e})") from None
    if manifest.format != FORMAT or manifest.format_version != FORMAT_VERSION:
        raise BundleError(f"{path}: format {manifest.format!r} version {manifest.format_version}, "
                         f"this engine reads {FORMAT!r} version {FORMAT_VERSION}")
    return manifest


def verify_artefacts(folder: str, manifest: Manifest, *, checksums: bool) -> None:
    """Every artefact exists with its recorded size (and, with ``checksums``, digest)."""
    for name, a in manifest.artefacts.items():
        if os.path.basename(a.path) != a.path:
            raise BundleError(f"{folder}: artefact {name!r} path {a.path!r} leaves the bundle folder")
        path = os.path.join(folder, a.path)
        if not os.path.isfile(path):
            raise BundleError(f"{path}: artefact {name!r} is missing from the bundle")
        size = os.path.getsize(path)
        if size != a.bytes:
            raise BundleError(f"{path}: artefact {name!r} has {size} bytes, the manifest says {a.bytes}")
        if checksums and file_digest(path) != a.sha256:
            raise BundleError(f"{path}: artefact {name!r} does not match its SHA-256 in the manifest")
