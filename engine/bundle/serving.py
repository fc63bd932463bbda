"""A loaded bundle: every part the request path reads, checked to fit together.

One `Serving` object is immutable after load; a `Ranker` holds exactly one
at a time and swaps the reference, which is what makes a swap atomic for
requests in flight (each request reads the reference once).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from engine import _core, _safetensors
from engine.bundle.manifest import Manifest, read_manifest, verify_artefacts
from engine.bundle.shared_vectors import index_vectors
from engine.errors import BundleError, CorruptFileError
from engine.ranking.first_phase import FirstPhase
from engine.ranking.popularity import CandidateLists
from engine.ranking.settings import check_surfaces
from engine.ranking.value_model import RETRIEVAL_SCORE, prefix_factor
from engine.vector_index import VectorIndex


def _read_arrow(path: str) -> pa.Table:
    try:
        with pa.memory_map(path) as source:
            return pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, OSError) as e:
        raise BundleError(f"{path}: not a readable Arrow IPC file ({e})") from None


def _read_vectors(path: str, rows: int, dim: int) -> np.ndarray:
    try:
        arrays, _ = _safetensors.read(path, mmap=True)
    except CorruptFileError as e:
        raise BundleError(str(e)) from None
    v = arrays.get("vectors")
    if v is None or v.dtype != np.float32 or v.shape != (rows, dim):
        raise BundleError(f"{path}: expected float32 vectors of shape ({rows}, {dim}), got "
                          f"{None if v is None else (v.dtype, v.shape)}")
    return v


def _scorer(s: "Serving", name: str, surface) -> "_core.SurfaceScorer":
    first = s.first_phases.get(name)
    return _core.SurfaceScorer(
        None if s.forest is None else s.forest._native, len(s.manifest.heads),
        first.ranges if first else [], first.blend if first else None,
        surface.rerank_count if first else 0, s.blends[name],
        s.columns["merchant_id"], s.columns["category_id"], s.manifest.n_items)


class Serving:
    """Index, forest, assembler, item columns and candidate lists of one bundle."""

    def __init__(self, folder: str, *, verify: bool = True) -> None:
        from engine.features import FeatureAssembler
        from engine.forest import Forest

        folder = os.fspath(folder)
        manifest: Manifest = read_manifest(folder)
        verify_artefacts(folder, manifest, checksums=verify)
        path = {k: os.path.join(folder, a.path) for k, a in manifest.artefacts.items()}
        for required in ("items", "item_vectors", "index", "candidates"):
            if required not in path:
                raise BundleError(f"{folder}: the manifest lists no {required!r} artefact")
        self.folder = folder
        self.manifest = manifest
        self.version = manifest.bundle_version

        items = _read_arrow(path["items"])
        if items.num_rows != manifest.n_items or "item_id" not in items.column_names:
            raise BundleError(f"{path['items']}: expected {manifest.n_items} rows with an item_id column, "
                              f"got {items.num_rows} rows, columns {items.column_names}")
        self.item_ids = items.column("item_id").to_numpy().astype(np.uint64)
        self._item_map = _core.IdMap(self.item_ids)
        self.item_vectors = _read_vectors(path["item_vectors"], manifest.n_items, manifest.dim)
        try:
            self.index = VectorIndex.load(path["index"], mmap=True, verify=verify)
        except CorruptFileError as e:
            raise BundleError(str(e)) from None
        if self.index.dim != manifest.dim:
            raise BundleError(f"{path['index']}: dim {self.index.dim}, the manifest says {manifest.dim}")
        try:
            self.lists = CandidateLists.load(path["candidates"], manifest.n_items)
        except CorruptFileError as e:
            raise BundleError(str(e)) from None
        # The vectors the request path reads: the index's own rows when it
        # holds them (shared_vectors.py), so a candidate's are read once.
        shared = index_vectors(self.index, self.item_vectors, verify=verify)
        self.vectors, self.vector_rows = shared if shared is not None else (self.item_vectors, None)
        try:
            self.assembler = FeatureAssembler(manifest.feature_spec, items, self.vectors,
                                              vector_rows=self.vector_rows)
        except (ValueError, TypeError) as e:
            raise BundleError(f"{path['items']}: does not fit the feature spec ({e})") from None
        self.feature_names = tuple(self.assembler.names)  # one tuple: the logger checks it once

        self.forest = None
        if "forest" in path:
            try:
                self.forest = Forest.load(path["forest"], verify=verify)
            except CorruptFileError as e:
                raise BundleError(str(e)) from None
            if self.forest.feature_names != list(manifest.feature_spec.names):
                raise BundleError(f"{path['forest']}: its features differ from the bundle's feature spec")
            if self.forest.output_names != manifest.heads:
                raise BundleError(f"{path['forest']}: heads {self.forest.output_names}, the manifest "
                                  f"says {manifest.heads}")
        elif manifest.heads:
            raise BundleError(f"{folder}: the manifest names heads {manifest.heads} but has no forest")

        from engine.bundle.build import head_tree_counts

        try:
            check_surfaces(manifest.surfaces, head_tree_counts(self.forest, manifest.heads), set(items.column_names))
        except ValueError as e:
            raise BundleError(f"{folder}: {e}") from None
        # Columns the request path reads per candidate: filters, value factors, rerank keys.
        wanted = set(manifest.filter_columns) | {"merchant_id", "category_id"}
        for s in manifest.surfaces.values():
            wanted |= s.value_model.factors - set(manifest.heads) - {RETRIEVAL_SCORE}
            if s.first_phase is not None:
                wanted |= {f for f in s.first_phase.factors if prefix_factor(f) is None} - {RETRIEVAL_SCORE}
        missing = sorted(wanted - set(items.column_names))
        if missing:
            raise BundleError(f"{path['items']}: columns {missing} are missing")
        self.columns: dict[str, np.ndarray] = {}
        for name in sorted(wanted):
            column = items.column(name).to_numpy(zero_copy_only=False)
            if column.dtype.kind in "iub":
                column = column.astype(np.int64) if column.dtype.kind != "b" else column
            else:
                column = column.astype(np.float32)
            self.columns[name] = np.ascontiguousarray(column)
        self.attributes = {c: self.columns[c] for c in manifest.filter_columns}
        self.attribute_kinds = self.index.attributes  # ('int' or 'bool'), read per request
        # The candidate stage (search, lists, merge) in one native call.
        self.candidates = _core.CandidateStage(self.index._native, self.lists.native_lists(), self.attributes,
                                               self.vectors, self.vector_rows, manifest.n_items)
        self.blends = {name: surface.value_model.compile(list(manifest.heads), self.columns, manifest.n_items)
                       for name, surface in manifest.surfaces.items()}
        self.first_phases = {name: FirstPhase(surface.first_phase, self.forest, self.columns, manifest.n_items)
                             for name, surface in manifest.surfaces.items() if surface.first_phase is not None}
        # Per surface, the stages after the features in one native call.
        self.scorers = {name: _scorer(self, name, surface) for name, surface in manifest.surfaces.items()}
        self.term_names = {name: [t.name for t in surface.value_model.terms]
                           for name, surface in manifest.surfaces.items()}

        # Request fields the spec reads that neither the user table nor the ranker supplies.
        self.required_context = frozenset(
            set(manifest.feature_spec.request_fields) - set(manifest.user_columns) - {"user_vector"})
        self.user_columns: dict[str, np.ndarray] = {}
        self.user_vectors = None
        self.user_has_vector = None
        self._user_map = None
        if "users" in path:
            users = _read_arrow(path["users"])
            self._user_map = _core.IdMap(users.column("user_id").to_numpy().astype(np.uint64))
            self.user_columns = {c: users.column(c).to_numpy(zero_copy_only=False)
                                 for c in manifest.user_columns}
            if "user_vectors" in path:
                self.user_vectors = _read_vectors(path["user_vectors"], users.num_rows, manifest.dim)
                # A zero row is a user without a vector: known once, not tested per request.
                self.user_has_vector = self.user_vectors.any(axis=1)

    def item_rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows of known item ids (uint64); unknown ones are dropped."""
        return self._item_map.known_rows(ids)

    def user_row(self, user_id: int) -> int:
        """The user's row, or -1 for an unknown user (the cold-start path)."""
        if self._user_map is None or not 0 <= user_id < 1 << 64:
            return -1
        return self._user_map.row(user_id)
