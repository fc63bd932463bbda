"""`Ranker`: the in-process ranking API a host service calls.

One request runs these stages, each one vectorised or native call over the
whole candidate set (no Python loop per candidate):

    user vector   the request's, the user-encoder hook's, the user table's,
                  or the mean of the recent items' vectors; none = cold start
    candidates    ANN over item embeddings with the request's filters
                  + popular items in scope + newest items without embeddings
                  (one `_core.CandidateStage` call)
    features      FeatureAssembler (cpp/features/) over the candidates
    heads         the surface's first phase, if any, then the bundle's
                  compiled Forest (p_click, p_order, ...) on what it keeps
    value         the surface's ValueModel blend of heads and item columns
    rerank        dedupe, merchant / category caps, diversity, exploration
                  (heads, value and rerank: one `_core.SurfaceScorer` call)
    log           one ImpressionRecord per response, written off-thread

Thread-safety: a Ranker is shared by all request threads. Its state is one
immutable `Serving` object; `rank` reads the reference once, so `swap`
(which builds the new state completely, then replaces the reference) never
gives a request a mix of two bundles, and never fails one in flight.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from engine import _validate
from engine.bundle.serving import Serving
from engine.impressions.record import ImpressionRecord
from engine.ranking.request import RankRequest, RankResponse
from engine.ranking.value_model import RETRIEVAL_SCORE

# RankResponse.sources codes (cpp/rerank/candidate_stage.hpp's kSource*).
SOURCE_ANN, SOURCE_POPULAR, SOURCE_NEW = 0, 1, 2
SOURCE_NAMES = ("ann", "popular", "new")

# user_encoder(recent item rows, item vectors of the bundle) -> float32 (dim,) or None
UserEncoder = Callable[[np.ndarray, np.ndarray], "np.ndarray | None"]


class Ranker:
    """Ranks products for one request at a time (or a batch) from a bundle.

    ``logger``: an `engine.impressions.ImpressionLogger` (or None): every
    response is logged with the features as served. ``user_encoder``: called
    with the request's recent item rows and the bundle's item vectors when
    the request carries no user vector; the neural-model stage plugs in here.
    """

    def __init__(self, serving: Serving, *, logger=None, user_encoder: UserEncoder | None = None) -> None:
        self._serving = serving
        self._logger = logger
        self._encoder = user_encoder
        self._pools: dict[int, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, bundle: str | os.PathLike, *, logger=None, user_encoder: UserEncoder | None = None,
             verify: bool = True) -> "Ranker":
        """Load a bundle (checksums of every artefact checked unless ``verify=False``)."""
        return cls(Serving(bundle, verify=verify), logger=logger, user_encoder=user_encoder)

    @property
    def bundle_version(self) -> str:
        return self._serving.version

    @property
    def surfaces(self) -> list[str]:
        return sorted(self._serving.manifest.surfaces)

    @property
    def feature_names(self) -> list[str]:
        return list(self._serving.manifest.feature_spec.names)

    def swap(self, bundle: str | os.PathLike, *, verify: bool = True) -> str:
        """Load another bundle and serve it from the next request on; returns the old version.

        The new bundle is loaded and validated completely first: a bad bundle
        raises here and the old one keeps serving.
        """
        new = Serving(bundle, verify=verify)
        old, self._serving = self._serving, new
        return old.version

    # -- the request path -------------------------------------------------
    def rank(self, request: RankRequest) -> RankResponse:
        s = self._serving  # read once: the whole request sees one bundle
        t0 = time.perf_counter_ns()
        settings = s.manifest.surfaces.get(request.surface)
        if settings is None:
            raise ValueError(f"surface: unknown {request.surface!r} (this bundle serves {sorted(s.manifest.surfaces)})")
        k = settings.k if request.k is None else request.k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected an integer >= 1, got {k!r}")
        filters = request.filters
        conditions = _conditions(s, filters)

        user_row = -1 if request.user_id is None else s.user_row(request.user_id)
        recent = _recent_rows(s, request.recent_item_ids)
        user_vector = self._user_vector(s, request, user_row, recent)
        t1 = time.perf_counter_ns()

        # One native call (tests/pipeline_support.py has it step by step).
        rows, source, retrieval = s.candidates.run(
            user_vector, settings.ann_candidates, conditions, settings.ann_ef or 0, settings.popular_candidates,
            settings.new_item_candidates, recent)
        t2 = time.perf_counter_ns()

        fields = _request_fields(s, request, user_row, user_vector)
        X = s.assembler.assemble(rows, fields)
        t3 = time.perf_counter_ns()

        # First phase (when the surface has one and more candidates than it
        # keeps), heads, value blend and re-rank: one native call.
        policy = settings.rerank
        explore = policy.temperature > 0 if request.explore is None else bool(request.explore)
        seed = request.seed if request.seed is not None else random.getrandbits(64)
        index, value, heads, terms, choice, propensity, (heads_us, value_us) = \
            s.scorers[request.surface].score(
                X, rows, retrieval, k, policy.max_per_merchant, policy.max_per_category, policy.category_decay,
                policy.temperature if explore else 0.0, policy.explore_window, policy.propensity_samples,
                seed & 0xFFFFFFFFFFFFFFFF)
        shown = rows[index]
        components = dict(zip(s.manifest.heads, heads))
        components.update(zip(s.term_names[request.surface], terms))
        if RETRIEVAL_SCORE not in components:
            components[RETRIEVAL_SCORE] = retrieval[index]
        t6 = time.perf_counter_ns()

        request_id = request.request_id or uuid.uuid4().hex
        response = RankResponse(
            request_id=request_id, item_ids=s.item_ids[shown], value=value, components=components,
            propensities=propensity if explore else None, sources=source[index],
            cold_start=user_vector is None, bundle_version=s.version, timings_us={},
        )
        if self._logger is not None:
            self._log(s, request, request_id, fields, user_vector, response, X[index], choice if explore else None)
        t7 = time.perf_counter_ns()
        response.timings_us = {
            "user": (t1 - t0) / 1e3, "candidates": (t2 - t1) / 1e3, "features": (t3 - t2) / 1e3,
            "heads": heads_us, "value": value_us, "rerank": (t6 - t3) / 1e3 - heads_us - value_us,
            "log": (t7 - t6) / 1e3, "total": (t7 - t0) / 1e3,
        }
        return response

    def rank_batch(self, requests: Sequence[RankRequest], threads: int = 1) -> list[RankResponse]:
        """Rank many requests; ``threads`` > 1 spreads them over a thread pool
        (the native stages release the GIL, so threads overlap)."""
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
        if threads == 1 or len(requests) < 2:
            return [self.rank(r) for r in requests]
        with self._lock:  # one pool per thread count, kept until close(): concurrent batches share it
            pool = self._pools.get(threads)
            if pool is None:
                pool = self._pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="rank-engine")
        return list(pool.map(self.rank, requests))

    def close(self) -> None:
        """Stop the batch thread pools (the logger is the caller's to close)."""
        with self._lock:
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=True)

    def __enter__(self) -> "Ranker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------
    def _user_vector(self, s: Serving, request: RankRequest, user_row: int, recent: np.ndarray):
        if request.user_vector is not None:
            v = np.ascontiguousarray(request.user_vector, dtype=np.float32)
            if v.shape != (s.manifest.dim,):
                raise ValueError(f"user_vector: expected {s.manifest.dim} values, got shape {v.shape}")
            if not np.isfinite(v).all():
                raise ValueError("user_vector: holds NaN or infinite values")
            return v
        if self._encoder is not None and len(recent):
            v = self._encoder(recent, s.item_vectors)
            if v is not None:
                v = np.ascontiguousarray(v, dtype=np.float32)
                if v.shape != (s.manifest.dim,) or not np.isfinite(v).all():
                    raise ValueError(f"user_encoder: returned {v.shape} values or non-finite ones, "
                                     f"expected {s.manifest.dim} finite values")
                return v
        if user_row >= 0 and s.user_vectors is not None and s.user_has_vector[user_row]:
            return s.user_vectors[user_row]
        if len(recent):
            v = s.item_vectors[recent].sum(axis=0)
            norm = float(np.linalg.norm(v))
            if norm > 0:
                return (v / norm).astype(np.float32)
        return None

    def _log(self, s: Serving, request: RankRequest, request_id: str, fields: dict, user_vector,
             response: RankResponse, features: np.ndarray, choice) -> None:
        """One record: the request fields as the assembler saw them (context and user
        attributes, so the log alone rebuilds the features), what was shown and why."""
        fields = fields.copy()
        del fields["user_vector"]  # logged on its own
        n = len(response.item_ids)
        self._logger.log(ImpressionRecord(
            request_id=request_id, timestamp_us=time.time_ns() // 1000, user_id=request.user_id,
            surface=request.surface, context=fields,
            user_vector=user_vector, item_ids=response.item_ids,
            positions=np.arange(n, dtype=np.int32), value=response.value, components=response.components,
            features=features, feature_names=s.feature_names, propensities=response.propensities,
            choice_probabilities=choice, bundle_version=s.version, model_versions=s.manifest.model_versions,
        ))


def _recent_rows(s: Serving, recent_item_ids) -> np.ndarray:
    if not recent_item_ids:
        return np.empty(0, dtype=np.int64)
    try:
        ids = np.ascontiguousarray(recent_item_ids, dtype=np.uint64)
    except (OverflowError, ValueError, TypeError):
        raise ValueError("recent_item_ids: expected non-negative integer item ids") from None
    return s.item_rows(ids)  # ids the catalogue no longer has are ignored


def _conditions(s: Serving, filters: dict) -> list:
    """The filters checked, in the form the candidate stage takes them
    [(attribute, int64 values)]: here, not by the index, since a cold-start
    request never reaches it."""
    conditions = []
    for name, value in filters.items():
        if name not in s.attributes:
            raise ValueError(f"filters: unknown attribute {name!r} (filterable: {sorted(s.attributes)})")
        # One value, a list or numpy values; or an error naming the filter.
        conditions.append((name, _validate.filter_values(name, value, s.attribute_kinds[name])))
    return conditions


def _request_fields(s: Serving, request: RankRequest, user_row: int, user_vector) -> dict:
    """The request fields the feature spec reads: user attributes, then the context."""
    missing = s.required_context - request.context.keys()
    if missing:
        raise ValueError(f"context: missing field(s) {sorted(missing)} that the feature spec reads "
                         "(give None for a value the request does not have)")
    fields: dict = {}
    for name, column in s.user_columns.items():
        fields[name] = column.item(user_row) if user_row >= 0 else None  # a Python scalar, no numpy one
    fields.update(request.context)
    fields["user_vector"] = user_vector
    return fields
