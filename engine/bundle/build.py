"""`build_bundle`: item table + item vectors + trained models -> a serving bundle."""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.ipc

from engine import _safetensors
from engine.bundle.manifest import FORMAT, FORMAT_VERSION, MANIFEST, Manifest, describe
from engine.features import FeatureSpec
from engine.ranking.popularity import CandidateLists
from engine.ranking.settings import SurfaceSettings, check_surfaces
from engine.vector_index import VectorIndex

ITEM_ID = "item_id"
USER_ID = "user_id"
DEFAULT_FILTERS = ("merchant_id", "category_id", "in_stock")


def _table(obj: Any, what: str) -> pa.Table:
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    if hasattr(obj, "__arrow_c_stream__"):
        return pa.table(obj)
    raise TypeError(f"{what}: expected an Arrow table (pyarrow, polars, ...), got {type(obj).__name__}")


def _write_arrow(table: pa.Table, path: str) -> None:
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _vectors(vectors: Any, n: int, what: str) -> np.ndarray:
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2 or len(v) != n:
        raise ValueError(f"{what}: expected a ({n}, dim) array, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{what}: holds NaN or infinite values")
    return v


@contextlib.contextmanager
def _staged(out: str):
    """A temporary folder beside ``out`` that replaces ``out`` when the block
    succeeds and is removed when it fails: readers never see half a bundle."""
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".bundle-", dir=parent)
    try:
        yield tmp
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_manifest(folder: str, manifest: Manifest) -> None:
    with open(os.path.join(folder, MANIFEST), "wb") as f:
        f.write(msgspec.json.format(msgspec.json.encode(manifest)))
        f.flush()
        os.fsync(f.fileno())


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def build_bundle(
    out: str | os.PathLike,
    *,
    items: Any,
    item_vectors: Any,
    feature_spec: FeatureSpec,
    surfaces: Mapping[str, SurfaceSettings],
    models: Any = None,
    users: Any = None,
    user_vectors: Any = None,
    popularity: str | np.ndarray | None = None,
    new_items: np.ndarray | None = None,
    filter_columns: tuple[str, ...] = DEFAULT_FILTERS,
    storage: str = "i8",
    model_versions: Mapping[str, str] | None = None,
    threads: int = 1,
    overwrite: bool = False,
) -> str:
    """Write a serving bundle to the directory ``out`` and return its path.

    ``items``: Arrow table with a unique uint64 ``item_id``, the
    ``filter_columns`` and every item column the spec and the value models
    read. ``item_vectors``: float32 (n_items, dim), row i for item row i;
    all-zero rows are items without an embedding (they reach shoppers through
    the new-item source). ``models``: what `engine.compile_forest` takes (a
    dict of head name -> Booster or model file) compiled with the spec's
    feature names, or a path to an already compiled Forest, or None (a bundle
    that ranks by retrieval score, e.g. the first logging policy).
    ``users`` / ``user_vectors``: optional user table (``user_id`` plus
    attribute columns the spec reads as request fields) and vectors.
    ``popularity``: an item column name or a score per item for the popular
    source (default: uniform, i.e. catalogue order). ``new_items``: boolean
    mask of items for the new-item source (default: rows without a vector).

    The bundle is assembled in a temporary folder beside ``out`` and renamed
    into place, so a reader never sees half a bundle.
    """
    from engine.features import FeatureAssembler
    from engine.forest import Forest, compile_forest

    out = os.fspath(out)
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"out: {out} exists (pass overwrite=True to replace it)")
    items = _table(items, "items")
    if ITEM_ID not in items.column_names:
        raise ValueError(f"items: needs a {ITEM_ID!r} column")
    ids = items.column(ITEM_ID).to_numpy().astype(np.uint64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"items: {ITEM_ID!r} values must be unique")
    n = items.num_rows
    vectors = _vectors(item_vectors, n, "item_vectors")
    has_vector = np.any(vectors != 0, axis=1)
    missing = [c for c in filter_columns if c not in items.column_names]
    if missing:
        raise ValueError(f"items: filter columns {missing} are missing")
    attributes = {c: items.column(c).to_numpy(zero_copy_only=False) for c in filter_columns}
    surfaces = dict(surfaces)
    if not surfaces:
        raise ValueError("surfaces: needs at least one surface")

    user_columns: list[str] = []
    if users is not None:
        users = _table(users, "users")
        if USER_ID not in users.column_names:
            raise ValueError(f"users: needs a {USER_ID!r} column")
        user_columns = [c for c in users.column_names if c != USER_ID]
        if user_vectors is not None:
            user_vectors = _vectors(user_vectors, users.num_rows, "user_vectors")
            if user_vectors.shape[1] != vectors.shape[1]:
                raise ValueError(f"user_vectors: dim {user_vectors.shape[1]} differs from item_vectors "
                                 f"dim {vectors.shape[1]}")

    # Fails early, with the feature's name, if the spec does not fit the table.
    FeatureAssembler(feature_spec, items, vectors)

    with _staged(out) as tmp:
        _write_arrow(items, os.path.join(tmp, "items.arrow"))
        _safetensors.write(os.path.join(tmp, "item_vectors.safetensors"), {"vectors": vectors}, {})

        index = VectorIndex(vectors.shape[1], metric="ip", storage=storage)
        rows = np.flatnonzero(has_vector).astype(np.uint64)
        index.add(rows, vectors[has_vector], {c: np.asarray(a)[has_vector] for c, a in attributes.items()},
                  threads=threads)
        index.save(os.path.join(tmp, "index.rei"))

        if popularity is None:
            score = np.zeros(n)
        elif isinstance(popularity, str):
            score = items.column(popularity).to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            score = np.asarray(popularity, dtype=np.float64)
        if len(score) != n:
            raise ValueError(f"popularity: expected {n} values, got {len(score)}")
        fresh = ~has_vector if new_items is None else np.asarray(new_items, dtype=bool)
        age = items.column("age_days").to_numpy() if "age_days" in items.column_names else None
        lists = CandidateLists.build(np.where(fresh, np.nan, score), fresh, attributes, age)
        lists.save(os.path.join(tmp, "candidates.safetensors"))

        heads: list[str] = []
        artefact_names = {"items": "items.arrow", "item_vectors": "item_vectors.safetensors",
                          "index": "index.rei", "candidates": "candidates.safetensors"}
        if models is not None:
            path = os.path.join(tmp, "forest.ref")
            if isinstance(models, (str, os.PathLike)) and str(models).endswith(".ref"):
                shutil.copyfile(models, path)
                forest = Forest.load(path)
            else:
                forest = compile_forest(models, path, feature_names=feature_spec.names)
            if forest.feature_names != list(feature_spec.names):
                raise ValueError("models: the forest's feature names differ from the feature spec's "
                                 "(compile it with feature_names=spec.names)")
            heads = forest.output_names
            artefact_names["forest"] = "forest.ref"
        if users is not None:
            _write_arrow(users, os.path.join(tmp, "users.arrow"))
            artefact_names["users"] = "users.arrow"
            if user_vectors is not None:
                _safetensors.write(os.path.join(tmp, "user_vectors.safetensors"), {"vectors": user_vectors}, {})
                artefact_names["user_vectors"] = "user_vectors.safetensors"

        check_surfaces(surfaces, head_tree_counts(forest if models is not None else None, heads),
                       set(items.column_names))
        manifest = Manifest(
            format=FORMAT, format_version=FORMAT_VERSION, bundle_version=uuid.uuid4().hex[:12],
            created_at=_now(), artefacts={k: describe(tmp, v) for k, v in artefact_names.items()},
            feature_spec=feature_spec, surfaces=surfaces, heads=heads,
            model_versions=dict(model_versions or {}), filter_columns=list(filter_columns),
            user_columns=user_columns, dim=int(vectors.shape[1]), n_items=n,
        )
        _write_manifest(tmp, manifest)
    return out


def head_tree_counts(forest, heads: list[str]) -> dict[str, int]:
    """Head -> tree count (multi-output heads by output name, with no prefix allowed)."""
    if forest is None:
        return {}
    out = {h: 0 for h in heads}
    for h in forest.heads:
        begin, end = forest.head_trees(h)
        if h in out:
            out[h] = end - begin
    return out


def with_surfaces(bundle: str | os.PathLike, out: str | os.PathLike,
                  surfaces: Mapping[str, SurfaceSettings], *, overwrite: bool = False) -> str:
    """A new bundle (new version) with the artefacts of ``bundle`` and other surface settings.

    Re-weighting a value model, changing the re-rank rules or the candidate
    counts needs no new index, forest or item table: the artefacts are
    hard-linked (copied where the file system cannot link) and only the
    manifest is written anew, after the settings are checked against the
    bundle's heads and item columns.
    """
    from engine.bundle.manifest import read_manifest, verify_artefacts

    bundle, out = os.fspath(bundle), os.fspath(out)
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"out: {out} exists (pass overwrite=True to replace it)")
    from engine.forest import Forest

    manifest = read_manifest(bundle)
    verify_artefacts(bundle, manifest, checksums=False)
    surfaces = dict(surfaces)
    with pa.memory_map(os.path.join(bundle, manifest.artefacts["items"].path)) as source:
        columns = set(pa.ipc.open_file(source).schema.names)
    forest = Forest.load(os.path.join(bundle, manifest.artefacts["forest"].path)) \
        if "forest" in manifest.artefacts else None
    check_surfaces(surfaces, head_tree_counts(forest, manifest.heads), columns)
    with _staged(out) as tmp:
        for a in manifest.artefacts.values():
            src, dst = os.path.join(bundle, a.path), os.path.join(tmp, a.path)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        _write_manifest(tmp, msgspec.structs.replace(
            manifest, surfaces=surfaces, bundle_version=uuid.uuid4().hex[:12], created_at=_now()))
    return out
