"""pytest-benchmark suite for engine.VectorIndex on a 100,000 x 64 generated catalogue.

    python -m pytest bench/test_ann_benchmark.py --benchmark-group-by=group

Not part of the default test run (pyproject ``testpaths = ["tests"]``). Each
engine case has a FAISS case in the same group, measured in the same run, so
the table reads as a ratio; recall@10 of every case is checked before it is
timed and recorded in ``extra_info``. Nothing here asserts a timing.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")  # before engine: see conftest.py
pytest.importorskip("pytest_benchmark")

from bench.ann.workload import choose_filters, exact_top_k, import_engine, recall_at_k  # noqa: E402
from engine.datasets import make_catalogue  # noqa: E402

engine = import_engine()
faiss.omp_set_num_threads(1)

N, DIM, K, N_QUERIES, BATCH = 100_000, 64, 10, 1000, 1000
TARGET_RECALL = 0.95


@pytest.fixture(scope="module")
def world():
    cat = make_catalogue(N, dim=DIM)
    queries = cat.queries(N_QUERIES, seed=1)
    truth = exact_top_k(queries, cat.vectors, K)
    filters = {c.name: c for c in choose_filters(cat, seed=0)}
    for c in filters.values():
        c.truth = exact_top_k(queries, cat.vectors, K, rows=np.flatnonzero(c.mask))
    order = np.argsort(cat.ids)
    sorted_ids = cat.ids[order].astype(np.int64)

    def positions(ids):
        at = np.clip(np.searchsorted(sorted_ids, ids), 0, N - 1)
        return np.where(sorted_ids[at] == ids, order[at], -1)

    return {"cat": cat, "queries": queries, "truth": truth, "filters": filters,
            "positions": positions}


@pytest.fixture(scope="module", params=["f32", "i8"])
def engine_index(request, world):
    index = engine.VectorIndex(DIM, "ip", request.param)
    cat = world["cat"]
    index.add(cat.ids, cat.vectors, cat.attributes, threads=1)
    return index


@pytest.fixture(scope="module")
def faiss_ivf(world):
    nlist = int(round(4 * np.sqrt(N)))
    index = faiss.index_factory(DIM, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(world["cat"].vectors)
    index.add(world["cat"].vectors)
    return index


def _smallest_knob(knobs, recall_of):
    """The first knob whose recall reaches TARGET_RECALL (checked before any timing)."""
    for knob in knobs:
        r = recall_of(knob)
        if r >= TARGET_RECALL:
            return knob, r
    pytest.fail(f"recall never reached {TARGET_RECALL} (last {r:.3f} at {knob})")


def _engine_recall(world, index, ef, filt=None, truth=None):
    ids, _ = index.search(world["queries"], K, filter=filt, ef=ef, threads=1)
    return recall_at_k(world["positions"](ids), world["truth"] if truth is None else truth)


def _faiss_recall(world, index, nprobe, truth=None, params=None):
    params = params or faiss.SearchParametersIVF(nprobe=nprobe)
    return recall_at_k(index.search(world["queries"], K, params=params)[1],
                       world["truth"] if truth is None else truth)


def _one_at_a_time(queries):
    singles = itertools.cycle([queries[i:i + 1] for i in range(len(queries))])
    return lambda: next(singles)


# -- unfiltered ---------------------------------------------------------------
@pytest.mark.parametrize("ef", [None, "tuned"])
def test_engine_batch1(benchmark, world, engine_index, ef):
    benchmark.group = "unfiltered batch 1"
    if ef == "tuned":
        ef, recall = _smallest_knob([2, 4, 6, 8, 12, 16, 24, 32, 48, 64],
                                    lambda e: _engine_recall(world, engine_index, e))
    else:
        recall = _engine_recall(world, engine_index, None)
    benchmark.extra_info.update(recall=recall, ef=ef, storage=engine_index.storage)
    nxt = _one_at_a_time(world["queries"])
    benchmark(lambda: engine_index.search(nxt(), K, ef=ef, threads=1))


def test_faiss_ivf_batch1(benchmark, world, faiss_ivf):
    benchmark.group = "unfiltered batch 1"
    nprobe, recall = _smallest_knob([2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128],
                                    lambda p: _faiss_recall(world, faiss_ivf, p))
    benchmark.extra_info.update(recall=recall, nprobe=nprobe, faiss=faiss.__version__)
    params = faiss.SearchParametersIVF(nprobe=nprobe)
    nxt = _one_at_a_time(world["queries"])
    benchmark(lambda: faiss_ivf.search(nxt(), K, params=params))


def test_engine_batch1000(benchmark, world, engine_index):
    benchmark.group = "unfiltered batch 1000"
    benchmark.extra_info.update(recall=_engine_recall(world, engine_index, None),
                                storage=engine_index.storage)
    q = world["queries"][:BATCH]
    benchmark(engine_index.search, q, K, threads=1)


def test_faiss_ivf_batch1000(benchmark, world, faiss_ivf):
    benchmark.group = "unfiltered batch 1000"
    nprobe, recall = _smallest_knob([2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128],
                                    lambda p: _faiss_recall(world, faiss_ivf, p))
    benchmark.extra_info.update(recall=recall, nprobe=nprobe)
    params = faiss.SearchParametersIVF(nprobe=nprobe)
    benchmark(faiss_ivf.search, world["queries"][:BATCH], K, params=params)


# -- filtered -----------------------------------------------------------------
FILTERS = ["merchant ~0.1 %", "merchant ~1 %", "merchants ~10 %", "in_stock (~90 %)"]


@pytest.mark.parametrize("name", FILTERS)
def test_engine_filtered_batch1(benchmark, world, engine_index, name):
    case = world["filters"][name]
    benchmark.group = f"filtered batch 1: {name}"
    filt = case.engine_filter()
    recall = _engine_recall(world, engine_index, None, filt, case.truth)
    assert recall >= 0.9, f"engine filtered recall {recall:.3f} for {name}"
    benchmark.extra_info.update(recall=recall, selectivity=case.selectivity,
                                storage=engine_index.storage)
    nxt = _one_at_a_time(world["queries"])
    benchmark(lambda: engine_index.search(nxt(), K, filter=filt, threads=1))


@pytest.mark.parametrize("name", FILTERS)
def test_faiss_ivf_filtered_batch1(benchmark, world, faiss_ivf, name):
    case = world["filters"][name]
    benchmark.group = f"filtered batch 1: {name}"
    bits = np.packbits(case.mask, bitorder="little")
    sel = faiss.IDSelectorBitmap(len(case.mask), faiss.swig_ptr(bits))
    nprobe, recall = _smallest_knob(
        [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1265],
        lambda p: _faiss_recall(world, faiss_ivf, p, case.truth,
                                faiss.SearchParametersIVF(sel=sel, nprobe=p)))
    benchmark.extra_info.update(recall=recall, nprobe=nprobe, selectivity=case.selectivity)
    params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
    nxt = _one_at_a_time(world["queries"])
    benchmark(lambda: faiss_ivf.search(nxt(), K, params=params))


# -- exact --------------------------------------------------------------------
@pytest.fixture(scope="module")
def faiss_flat(world):
    index = faiss.IndexFlatIP(DIM)
    index.add(world["cat"].vectors)
    return index


@pytest.mark.parametrize("batch", [1, BATCH])
def test_engine_exact(benchmark, world, engine_index, batch):
    benchmark.group = f"exact batch {batch}"
    ids, _ = engine_index.search(world["queries"], K, exact=True, threads=1)
    recall = recall_at_k(world["positions"](ids), world["truth"])
    assert recall >= 0.999
    benchmark.extra_info.update(recall=recall, storage=engine_index.storage)
    if batch == 1:
        nxt = _one_at_a_time(world["queries"])
        benchmark(lambda: engine_index.search(nxt(), K, exact=True, threads=1))
    else:
        benchmark.pedantic(engine_index.search, (world["queries"][:batch], K),
                           {"exact": True, "threads": 1}, rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("batch", [1, BATCH])
def test_faiss_flat_exact(benchmark, world, faiss_flat, batch):
    benchmark.group = f"exact batch {batch}"
    recall = recall_at_k(faiss_flat.search(world["queries"], K)[1], world["truth"])
    benchmark.extra_info.update(recall=recall)
    if batch == 1:
        nxt = _one_at_a_time(world["queries"])
        benchmark(lambda: faiss_flat.search(nxt(), K))
    else:
        benchmark.pedantic(faiss_flat.search, (world["queries"][:batch], K),
                           rounds=3, warmup_rounds=1)
