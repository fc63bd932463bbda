"""The ANN workload: catalogue, queries, filters and exact ground truth.

Every process of a run (the driver and one worker per library) calls
``load_workload`` with the same parameters and gets the same arrays: the
catalogue and queries are regenerated (a few seconds, deterministic), the
exact ground truth is computed once and cached under ``bench/results/cache``
keyed by the parameters and a fingerprint of the generated data.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.machine import import_engine

import_engine()
from engine.datasets import Catalogue, make_catalogue  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
CACHE_DIR = RESULTS_DIR / "cache"
TRUTH_FORMAT = 1  # bump when the ground-truth or filter definitions change


@dataclass(frozen=True)
class Params:
    n: int = 1_000_000
    dim: int = 64
    n_queries: int = 1000
    k: int = 10
    n_merchants: int = 5000
    in_stock_rate: float = 0.9
    seed: int = 0
    query_seed: int = 1

    @property
    def key(self) -> str:
        return (f"n{self.n}-d{self.dim}-q{self.n_queries}-k{self.k}-m{self.n_merchants}"
                f"-s{self.in_stock_rate:g}-seed{self.seed}-{self.query_seed}-v{TRUTH_FORMAT}")


@dataclass
class FilterCase:
    """One filter, in the engine's form and as a row mask, with its exact answer."""

    name: str  # e.g. "merchant ~0.1 %"
    target: float  # the selectivity asked for
    column: str
    values: list[int] | bool  # merchant ids, or the in_stock value
    mask: np.ndarray  # bool (n,): rows that pass
    truth: np.ndarray | None = None  # (n_queries, k) row positions, -1 padded

    @property
    def selectivity(self) -> float:
        return float(self.mask.mean())

    def engine_filter(self) -> dict:
        """The filter as a service would hold it: one id, a bool, or an int64
        array of merchant ids (a Python list of 811 ids would spend ~16 us of
        each call in numpy's list conversion, not in the search)."""
        values = self.values
        if isinstance(values, list):
            values = values[0] if len(values) == 1 else np.asarray(values, dtype=np.int64)
        return {self.column: values}


@dataclass
class Workload:
    params: Params
    catalogue: Catalogue
    queries: np.ndarray  # (n_queries, dim) float32
    truth: np.ndarray  # (n_queries, k) row positions of the exact top k
    filters: list[FilterCase]
    fingerprint: str

    def positions_of(self, ids: np.ndarray) -> np.ndarray:
        """Map catalogue ids (uint64 / int64, -1 padded) to row positions (-1 padded)."""
        return self._id_map(np.asarray(ids))

    def __post_init__(self) -> None:
        order = np.argsort(self.catalogue.ids)
        sorted_ids = self.catalogue.ids[order].astype(np.int64)

        def id_map(ids: np.ndarray) -> np.ndarray:
            flat = ids.astype(np.int64, copy=False).ravel()
            at = np.clip(np.searchsorted(sorted_ids, flat), 0, len(sorted_ids) - 1)
            found = sorted_ids[at] == flat
            return np.where(found, order[at], -1).reshape(ids.shape)

        self._id_map = id_map


def exact_top_k(queries: np.ndarray, vectors: np.ndarray, k: int, rows: np.ndarray | None = None,
                block: int = 131_072) -> np.ndarray:
    """Row positions of the k largest inner products per query, best first.

    ``rows``: restrict to these row positions (a filter). Blocks of the
    database are scored with one matmul each and merged with argpartition,
    so memory stays at (n_queries, block).
    """
    nq = len(queries)
    candidates = np.arange(len(vectors)) if rows is None else rows
    best_pos = np.full((nq, 0), -1, dtype=np.int64)
    best_score = np.full((nq, 0), -np.inf, dtype=np.float32)
    for start in range(0, len(candidates), block):
        pos = candidates[start:start + block]
        scores = queries @ vectors[pos].T
        take = min(k, scores.shape[1])
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        all_pos = np.concatenate([best_pos, pos[part]], axis=1)
        all_score = np.concatenate([best_score, np.take_along_axis(scores, part, axis=1)], axis=1)
        take = min(k, all_score.shape[1])
        keep = np.argpartition(-all_score, take - 1, axis=1)[:, :take]
        best_pos = np.take_along_axis(all_pos, keep, axis=1)
        best_score = np.take_along_axis(all_score, keep, axis=1)
    order = np.argsort(-best_score, axis=1, kind="stable")
    best_pos = np.take_along_axis(best_pos, order, axis=1)
    if best_pos.shape[1] < k:  # fewer matching rows than k
        best_pos = np.pad(best_pos, ((0, 0), (0, k - best_pos.shape[1])), constant_values=-1)
    return best_pos


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / |truth| (truth and found are -1 padded)."""
    found = np.asarray(found)
    if found.shape[1] > truth.shape[1]:
        found = found[:, : truth.shape[1]]
    valid = truth >= 0
    hits = ((found[:, :, None] == truth[:, None, :]) & valid[:, None, :] & (found[:, :, None] >= 0))
    per_query = hits.any(axis=1).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    return float(per_query.mean())


def choose_filters(cat: Catalogue, seed: int) -> list[FilterCase]:
    """Merchant filters near 0.1 %, 1 % and 10 % of rows, and in_stock (~90 %)."""
    merchant = cat.attributes["merchant_id"]
    share = np.bincount(merchant, minlength=int(merchant.max()) + 1) / len(merchant)
    cases = []
    for target in (0.001, 0.01):
        m = int(np.argmin(np.abs(share - target)))  # ties: the smallest id
        cases.append(FilterCase(f"merchant ~{target * 100:g} %", target, "merchant_id", [m], merchant == m))
    # Many small merchants adding up to 10 % (e.g. one region's sellers): a membership filter.
    rng = np.random.default_rng([seed, 10])
    small = np.flatnonzero((share > 0) & (share <= 0.005))
    rng.shuffle(small)
    stop = int(np.searchsorted(np.cumsum(share[small]), 0.10)) + 1
    chosen = sorted(int(m) for m in small[:stop])
    cases.append(FilterCase("merchants ~10 %", 0.10, "merchant_id", chosen, np.isin(merchant, chosen)))
    in_stock = cat.attributes["in_stock"]
    cases.append(FilterCase("in_stock (~90 %)", 0.90, "in_stock", True, in_stock.copy()))
    return cases


def _fingerprint(cat: Catalogue, queries: np.ndarray) -> str:
    h = hashlib.sha256()
    step = max(1, len(cat) // 1000)
    for arr in (cat.ids[::step], cat.vectors[::step], queries[:50],
                cat.attributes["merchant_id"][::step], cat.attributes["in_stock"][::step]):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def load_workload(params: Params, *, compute: bool = True, log=None) -> Workload:
    """The workload for ``params``; ground truth from the cache or computed and cached."""
    say = log or (lambda *_: None)
    t0 = time.perf_counter()
    cat = make_catalogue(params.n, dim=params.dim, n_merchants=params.n_merchants,
                         in_stock_rate=params.in_stock_rate, seed=params.seed)
    queries = cat.queries(params.n_queries, seed=params.query_seed)
    filters = choose_filters(cat, params.seed)
    fingerprint = _fingerprint(cat, queries)
    say(f"catalogue {params.n} x {params.dim} generated in {time.perf_counter() - t0:.1f} s")

    path = CACHE_DIR / f"truth-{params.key}.npz"
    truth = None
    if path.exists():
        with np.load(path) as z:
            if str(z["fingerprint"]) == fingerprint:
                truth = z["truth"]
                for i, case in enumerate(filters):
                    case.truth = z[f"filter{i}"]
                say(f"ground truth from {path.relative_to(RESULTS_DIR.parent.parent)}")
    if truth is None:
        if not compute:
            raise FileNotFoundError(f"no ground truth cached at {path}")
        t1 = time.perf_counter()
        truth = exact_top_k(queries, cat.vectors, params.k)
        for case in filters:
            case.truth = exact_top_k(queries, cat.vectors, params.k, rows=np.flatnonzero(case.mask))
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, fingerprint=np.array(fingerprint), truth=truth,
                 **{f"filter{i}": c.truth for i, c in enumerate(filters)})
        os.replace(tmp, path)
        say(f"ground truth computed in {time.perf_counter() - t1:.1f} s, cached at {path.name}")
    return Workload(params, cat, queries, truth, filters, fingerprint)


def ivf_nlist(n: int) -> int:
    """nlist used for the FAISS IVF peers: about 4 * sqrt(n)."""
    return max(1, int(round(4 * math.sqrt(n))))
