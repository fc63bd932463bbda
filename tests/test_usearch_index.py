"""UsearchIndex: recall against numpy, filters at several selectivities, score
conventions, removal, files (round trips and damaged files), input errors and
concurrent searches."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import safetensors.numpy

import engine
from conftest import clustered, queries_like, recall
from engine import _safetensors

N, DIM, K = 20_000, 32, 10
METRICS = ("ip", "cos", "l2")


# -- data ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def world():
    """Clustered vectors (norms spread over 0.5 - 2 so ip differs from cos) with
    uniform attributes of known selectivity and one correlated with the clusters."""
    ids, x, attrs = clustered(N, DIM, seed=11)
    rng = np.random.default_rng(12)
    x = (x * rng.uniform(0.5, 2.0, (N, 1))).astype(np.float32)
    attrs = {
        "shard1000": rng.integers(0, 1000, N),  # == v keeps 0.1 %
        "shard100": rng.integers(0, 100, N),  # 1 %
        "shard10": rng.integers(0, 10, N),  # 10 %
        "in_stock": attrs["in_stock"],  # True keeps 90 %
        "category_id": attrs["category_id"],  # follows the clusters
    }
    q = queries_like(x, 150, seed=13) * 1.5
    return ids, x, attrs, q.astype(np.float32)


_SCORES: dict = {}


def numpy_scores(q: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    """Scores in the engine's convention, in float64 (cached: the data are fixed)."""
    key = (id(q), id(x), metric)
    if key not in _SCORES:
        if len(_SCORES) > 6:
            _SCORES.clear()
        _SCORES[key] = (q, x, _numpy_scores(q, x, metric))  # holding q, x keeps their ids unique
    return _SCORES[key][2]


def _numpy_scores(q: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    q, x = q.astype(np.float64), x.astype(np.float64)
    if metric == "ip":
        return q @ x.T
    if metric == "cos":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return q @ x.T
    return (q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * q @ x.T


def truth(world, metric, mask=None, k=K):
    ids, x, _, q = world
    s = numpy_scores(q, x, metric)
    better = -s if metric != "l2" else s
    if mask is not None:
        better = np.where(mask[None, :], better, np.inf)
    order = np.argpartition(better, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(order, np.argsort(np.take_along_axis(better, order, 1), axis=1), 1)
    top = np.take_along_axis(s, order, 1)
    found = np.isfinite(np.take_along_axis(better, order, 1))
    return np.where(found, ids[order].astype(np.int64), -1), np.where(found, top, np.nan)


def build(world, metric, storage="f32", n=None, **kw):
    ids, x, attrs, _ = world
    n = len(ids) if n is None else n
    index = engine.UsearchIndex(DIM, metric, storage, **kw)
    index.add(ids[:n], x[:n], {k: v[:n] for k, v in attrs.items()}, threads=2)
    return index


@pytest.fixture(scope="module")
def built(world):
    return {m: build(world, m) for m in METRICS}


def graph_only(monkeypatch, index):
    """Send every filtered search through the HNSW over-fetch path."""
    monkeypatch.setattr(index, "exact_max_rows", 0)
    monkeypatch.setattr(index, "exact_max_fraction", 0.0)


def check_scores(world, metric, found, scores):
    """Returned scores equal numpy's for the returned ids, best first."""
    ids, x, _, q = world
    s = numpy_scores(q, x, metric)
    by_id = np.argsort(ids)
    valid = found >= 0
    rows = by_id[np.searchsorted(ids[by_id], np.where(valid, found, 0).astype(np.uint64))]
    assert (ids[rows][valid] == found[valid].astype(np.uint64)).all()
    expected = np.take_along_axis(s, rows, 1)
    np.testing.assert_allclose(scores[valid], expected[valid], rtol=1e-4, atol=1e-4)
    assert np.isnan(scores[~valid]).all()
    assert (valid[:, 1:] <= valid[:, :-1]).all()  # padding only at the end
    step = np.diff(np.where(valid, scores, np.nan), axis=1)
    step = step[np.isfinite(step)]
    assert (step <= 1e-6).all() if metric != "l2" else (step >= -1e-6).all()


# -- recall and scores ------------------------------------------------------------
@pytest.mark.parametrize("metric", METRICS)
def test_unfiltered_recall_and_scores(world, built, metric):
    found, scores = built[metric].search(world[3], K)
    assert found.shape == scores.shape == (len(world[3]), K)
    assert found.dtype == np.int64 and scores.dtype == np.float32
    assert recall(found, truth(world, metric)[0]) >= 0.9
    check_scores(world, metric, found, scores)


@pytest.mark.parametrize("metric", METRICS)
def test_exact_search_matches_numpy(world, built, metric):
    found, scores = built[metric].search(world[3], K, exact=True)
    want_ids, want_scores = truth(world, metric)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)
    assert recall(found, want_ids) >= 0.99  # only float32 near-ties may swap
    check_scores(world, metric, found, scores)


SELECTIVITY = {  # name -> (filter, mask from attrs)
    "0.1%": ({"shard1000": 7}, lambda a: a["shard1000"] == 7),
    "1%": ({"shard100": 7}, lambda a: a["shard100"] == 7),
    "10%": ({"shard10": 7}, lambda a: a["shard10"] == 7),
    "90%": ({"in_stock": True}, lambda a: a["in_stock"]),
    "10%-and": ({"shard10": [1, 2], "in_stock": False},
                lambda a: np.isin(a["shard10"], [1, 2]) & ~a["in_stock"]),
    "correlated": ({"category_id": 3}, lambda a: a["category_id"] == 3),
}


@pytest.mark.parametrize("plan", ["auto", "graph"])
@pytest.mark.parametrize("name", list(SELECTIVITY))
@pytest.mark.parametrize("metric", METRICS)
def test_filtered_recall(world, built, monkeypatch, metric, name, plan):
    ids, _, attrs, q = world
    index = built[metric]
    if plan == "graph":
        graph_only(monkeypatch, index)
    filt, mask_of = SELECTIVITY[name]
    mask = mask_of(attrs)
    found, scores = index.search(q, K, filter=filt)
    assert set(found[found >= 0].tolist()) <= set(ids[mask].astype(np.int64).tolist())
    assert recall(found, truth(world, metric, mask)[0]) >= 0.9
    check_scores(world, metric, found, scores)


def test_allow_list(world, built):
    ids, _, _, q = world
    rng = np.random.default_rng(3)
    allowed = rng.choice(ids, 3000, replace=False)
    mask = np.isin(ids, allowed)
    with_unknown = np.concatenate([allowed, np.array([10**15, 10**15 + 1], np.uint64)])  # ignored
    for metric in ("ip", "l2"):
        found, scores = built[metric].search(q, K, filter=with_unknown)
        assert set(found[found >= 0].tolist()) <= set(allowed.astype(np.int64).tolist())
        assert recall(found, truth(world, metric, mask)[0]) >= 0.9
        check_scores(world, metric, found, scores)


def test_padding_when_fewer_than_k_match(world, built):
    ids, _, attrs, q = world
    index = built["ip"]
    few = ids[:3].astype(np.int64)
    for filt in ({"shard1000": 7, "shard100": 3, "shard10": 4}, few, list(few[:1])):
        found, scores = index.search(q, K, filter=filt)
        mask = np.isin(ids, np.asarray(filt)) if not isinstance(filt, dict) else (
            (attrs["shard1000"] == 7) & (attrs["shard100"] == 3) & (attrs["shard10"] == 4))
        n = int(mask.sum())
        assert n < K
        assert (found[:, :n] >= 0).all() and (found[:, n:] == -1).all()
        assert np.isfinite(scores[:, :n]).all() and np.isnan(scores[:, n:]).all()
    for nothing in ({"shard1000": 5000}, {"shard10": []}, np.array([], dtype=np.int64), []):
        found, scores = index.search(q[:3], K, filter=nothing)
        assert (found == -1).all() and np.isnan(scores).all()
    small = engine.UsearchIndex(DIM, "l2")
    small.add(ids[:4], world[1][:4])
    found, scores = small.search(q[:2], K)
    assert (found[:, :4] >= 0).all() and (found[:, 4:] == -1).all() and np.isnan(scores[:, 4:]).all()
    found, scores = index.search(np.empty((0, DIM), np.float32), K)
    assert found.shape == scores.shape == (0, K)


def test_one_dimensional_query_is_a_batch_of_one(world, built):
    q = world[3]
    a = built["cos"].search(q[0], K)
    b = built["cos"].search(q[:1], K)
    assert a[0].shape == (1, K)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_ef_is_accepted_and_deepens_search(world, built):
    index = built["l2"]
    want = truth(world, "l2")[0]
    low = recall(index.search(world[3], K, ef=10)[0], want)
    high = recall(index.search(world[3], K, ef=400)[0], want)
    assert high >= low and high >= 0.97
    assert index.expansion_search == 64  # per call only


@pytest.mark.parametrize("metric, storage", [("ip", "f16"), ("cos", "i8"), ("l2", "f16")])
def test_quantised_storage_reranks_with_f32(world, metric, storage):
    ids, x, attrs, q = world
    part = (ids[:8000], x[:8000], {k: v[:8000] for k, v in attrs.items()}, q)
    index = build(part, metric, storage)
    assert index.storage == storage
    found, scores = index.search(q, K)
    assert recall(found, truth(part, metric)[0]) >= 0.9
    check_scores(part, metric, found, scores)
    mask = part[2]["in_stock"]
    found, _ = index.search(q, K, filter={"in_stock": True})  # the graph path
    assert recall(found, truth(part, metric, mask)[0]) >= 0.9


def test_incremental_adds_and_arrow_inputs(world):
    """Many adds (numpy, then Arrow) answer like the same rows added at once."""
    pa = pytest.importorskip("pyarrow")
    ids, x, attrs, q = world
    n = 6000
    index = engine.UsearchIndex(DIM, "l2")
    for b in range(0, 4000, 500):
        index.add(ids[b:b + 500], x[b:b + 500], {k: v[b:b + 500] for k, v in attrs.items()})
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x[4000:n].ravel()), DIM)
    table = pa.table({k: v[4000:n] for k, v in attrs.items()})
    index.add(pa.array(ids[4000:n]), vectors, table)
    assert len(index) == n
    part = (ids[:n], x[:n], {k: v[:n] for k, v in attrs.items()}, q)
    found, scores = index.search(q, K)
    assert recall(found, truth(part, "l2")[0]) >= 0.9
    check_scores(part, "l2", found, scores)
    mask = part[2]["shard10"] == 5
    found, _ = index.search(q, K, filter={"shard10": 5})
    assert recall(found, truth(part, "l2", mask)[0]) >= 0.99  # 10 % of 6000: the exact plan


# -- removal ------------------------------------------------------------------
def test_remove_hides_rows(world):
    ids, x, attrs, q = world
    index = build(world, "cos", n=8000)
    first, _ = index.search(q, K)
    gone = np.unique(first[:, :4][first[:, :4] >= 0])
    assert index.remove(gone) == len(gone)
    assert len(index) == 8000 - len(gone)
    for kw in ({}, {"exact": True}, {"filter": {"in_stock": True}}, {"filter": {"shard100": 1}},
               {"filter": ids[:8000]}):
        found, _ = index.search(q, K, **kw)
        assert not set(found.ravel().tolist()) & set(gone.tolist())
        assert (found[:, :K] >= 0).all()
    keep = ~np.isin(ids[:8000], gone)
    got, _ = index.search(q, K)
    sub = (ids[:8000][keep], x[:8000][keep], None, q)
    assert recall(got, truth(sub, "cos")[0]) >= 0.9

    with pytest.raises(ValueError, match="ids: id .* not in the index"):
        index.remove(gone[:1])
    alive = ids[:8000][keep].astype(np.int64)
    with pytest.raises(ValueError, match="ids: duplicate"):
        index.remove([int(alive[0]), int(alive[0])])
    with pytest.raises(ValueError, match="ids: id .* not in the index"):
        index.remove(np.concatenate([alive[:1], gone[:1]]))
    assert len(index) == 8000 - len(gone)  # a failed remove removes nothing
    assert index.remove(np.concatenate([gone[:2], alive[:1], alive[:1]]), missing_ok=True) == 1
    # A removed id can come back.
    index.add(gone[:1], x[:8000][ids[:8000] == gone[0]], {k: v[:1] for k, v in attrs.items()})
    assert gone[0] in index.search(x[:8000][ids[:8000] == gone[0]], 1, exact=True)[0]


# -- input errors -------------------------------------------------------------
def test_constructor_errors():
    for kwargs, exc, name in [
        (dict(dim=0), ValueError, "dim"), (dict(dim=3.0), TypeError, "dim"),
        (dict(dim=4, metric="dot"), ValueError, "metric"),
        (dict(dim=4, storage="bf16"), ValueError, "storage"),
        (dict(dim=4, metric="l2", storage="i8"), ValueError, "storage"),
        (dict(dim=4, metric="ip", storage="i8"), ValueError, "storage"),
        (dict(dim=4, connectivity=1), ValueError, "connectivity"),
        (dict(dim=4, expansion_search=0), ValueError, "expansion_search"),
        (dict(dim=4, seed=-1), ValueError, "seed"),
    ]:
        with pytest.raises(exc, match=name):
            engine.UsearchIndex(**kwargs)


def test_add_errors(world):
    ids, x, attrs, _ = world
    index = engine.UsearchIndex(DIM, "cos")
    a = {k: v[:10] for k, v in attrs.items()}
    index.add(ids[:10], x[:10], a)
    nan = x[10:12].copy()
    nan[1, 3] = np.nan
    zero = np.zeros((2, DIM), np.float32)
    cases = [
        ((np.r_[ids[10:11], ids[10:11]], x[10:12], {k: v[:2] for k, v in attrs.items()}),
         ValueError, "ids: duplicate"),
        ((ids[9:11], x[10:12], {k: v[:2] for k, v in attrs.items()}), ValueError, "ids: id .* already"),
        ((ids[10:12], x[10:12, :5], {k: v[:2] for k, v in attrs.items()}), ValueError, "vectors"),
        ((ids[10:12], nan, {k: v[:2] for k, v in attrs.items()}), ValueError, "vectors: row 1"),
        ((ids[10:12], zero, {k: v[:2] for k, v in attrs.items()}), ValueError, "vectors: row 0 is the zero"),
        ((ids[10:12], x[10:13], {k: v[:2] for k, v in attrs.items()}), ValueError, "vectors"),
        ((np.array([-1, 5]), x[10:12], {k: v[:2] for k, v in attrs.items()}), ValueError, "ids"),
        ((np.array([1.5, 2.5]), x[10:12], {k: v[:2] for k, v in attrs.items()}), TypeError, "ids"),
        ((ids[10:12], x[10:12].astype(np.int32), {k: v[:2] for k, v in attrs.items()}), TypeError, "vectors"),
        ((ids[10:12], x[10:12], {k: v[:3] for k, v in attrs.items()}), ValueError, "attributes"),
        ((ids[10:12], x[10:12], {"in_stock": attrs["in_stock"][:2]}), ValueError, "attributes"),
        ((ids[10:12], x[10:12], None), ValueError, "attributes"),
        ((ids[10:12], x[10:12], {**{k: v[:2] for k, v in attrs.items()}, "shard10": np.ones(2)}),
         TypeError, "attributes"),
    ]
    for args, exc, match in cases:
        with pytest.raises(exc, match=match):
            index.add(*args)
    assert len(index) == 10  # nothing half-added
    with pytest.raises(TypeError, match="threads"):
        index.add(ids[10:12], x[10:12], {k: v[:2] for k, v in attrs.items()}, threads=1.0)
    bare = engine.UsearchIndex(DIM)
    bare.add(ids[:2], x[:2])
    with pytest.raises(ValueError, match="attributes"):  # no columns, then columns
        bare.add(ids[2:4], x[2:4], {"in_stock": attrs["in_stock"][:2]})


def test_search_errors(world, built):
    q = world[3][:2]
    index = built["cos"]
    bad = q.copy()
    bad[0, 0] = np.inf
    cases = [
        (dict(queries=q, k=0), ValueError, "k"),
        (dict(queries=q, k="3"), TypeError, "k"),
        (dict(queries=q[:, :5], k=3), ValueError, "queries"),
        (dict(queries=bad, k=3), ValueError, "queries: row 0"),
        (dict(queries=np.zeros((1, DIM), np.float32), k=3), ValueError, "queries: row 0 is the zero"),
        (dict(queries=q.astype(np.int64), k=3), TypeError, "queries"),
        (dict(queries=q, k=3, ef=0), ValueError, "ef"),
        (dict(queries=q, k=3, threads=0), ValueError, "threads"),
        (dict(queries=q, k=3, filter={"colour": 1}), ValueError, "filter: unknown attribute 'colour'"),
        (dict(queries=q, k=3, filter={"in_stock": 1}), TypeError, r"filter\['in_stock'\]"),
        (dict(queries=q, k=3, filter={"shard10": True}), TypeError, r"filter\['shard10'\]"),
        (dict(queries=q, k=3, filter={"shard10": 1.5}), TypeError, r"filter\['shard10'\]"),
        (dict(queries=q, k=3, filter="in_stock"), TypeError, "filter"),
        (dict(queries=q, k=3, filter=np.array([1.0, 2.0])), TypeError, "filter"),
    ]
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match):
            index.search(**kwargs)


# -- files --------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(world, tmp_path_factory):
    ids, x, attrs, q = world
    index = build(world, "ip", n=6000)
    index.remove(ids[:25])
    path = tmp_path_factory.mktemp("uidx") / "items.uidx"
    index.save(path)
    return index, path, q[:40]


def graph_file(path):
    names = [n for n in os.listdir(path.parent) if n.startswith(path.name + ".") and n.endswith(".usearch")]
    assert len(names) == 1, names
    return path.parent / names[0]


SEARCHES = ({}, {"exact": True}, {"ef": 128}, {"filter": {"in_stock": False, "shard10": [1, 2]}},
            {"filter": {"shard10": 4}}, {"filter": np.arange(0, 10**6, 7)})


@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip_gives_identical_answers(world, saved, mmap):
    index, path, q = saved
    loaded = engine.UsearchIndex.load(path, mmap=mmap)
    assert len(loaded) == len(index) == 5975 and loaded.attributes == index.attributes
    assert (loaded.dim, loaded.metric, loaded.storage) == (DIM, "ip", "f32")
    for kw in SEARCHES:
        a, b = index.search(q, K, **kw), loaded.search(q, K, **kw)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1], equal_nan=True)
    # The loaded index stays live (a mapped graph is copied on the first write).
    ids, x, attrs, _ = world
    loaded.add(ids[6000:6010], x[6000:6010], {k: v[6000:6010] for k, v in attrs.items()})
    assert loaded.remove(ids[100:110]) == 10
    assert len(loaded) == len(index)
    got, _ = loaded.search(q, K, filter=ids[6000:6010])
    assert (np.sort(got, axis=1) == np.sort(ids[6000:6010].astype(np.int64))).all()
    assert (loaded.search(q, K, filter=ids[100:110])[0] == -1).all()
    # ... and the file still holds the saved index.
    again = engine.UsearchIndex.load(path, mmap=mmap)
    a, b = index.search(q, K), again.search(q, K)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_saving_over_an_index_replaces_both_files(world, tmp_path):
    ids, x, attrs, q = world
    index = build(world, "l2", n=2000)
    target = tmp_path / "a.uidx"
    index.save(target)
    loaded = engine.UsearchIndex.load(target)  # maps the first pair
    index.remove(ids[:10])
    index.save(target)  # overwrite in place
    assert sorted(os.listdir(tmp_path)) == sorted(["a.uidx", graph_file(target).name])
    assert len(engine.UsearchIndex.load(target)) == 1990
    assert len(loaded) == 2000 and loaded.search(q[:3], K)[0].shape == (3, K)  # still readable
    empty = engine.UsearchIndex(DIM, "cos")
    empty.save(tmp_path / "empty.uidx")
    back = engine.UsearchIndex.load(tmp_path / "empty.uidx")
    assert len(back) == 0 and back.attributes == {}
    found, scores = back.search(q[:2], 3)
    assert (found == -1).all() and np.isnan(scores).all()


def test_file_is_plain_safetensors(saved):
    _, path, _ = saved
    tensors = safetensors.numpy.load_file(str(path))
    assert {"ids", "live", "vectors", "attributes"} <= set(tensors)


def test_truncated_files_are_refused(saved, tmp_path):
    _, path, _ = saved
    blob, graph = path.read_bytes(), graph_file(path).read_bytes()
    rng = np.random.default_rng(0)
    for cut in sorted({0, 1, 7, 8, 9, 100, len(blob) // 2, len(blob) - 1, *rng.integers(0, len(blob), 10)}):
        bad = tmp_path / f"cut{cut}.uidx"
        bad.write_bytes(blob[:cut])
        with pytest.raises(engine.CorruptFileError, match=str(bad)):
            engine.UsearchIndex.load(bad)
    main, graph_copy = _copy_pair(path, tmp_path, "g.uidx")
    for cut in (0, 64, len(graph) // 2, len(graph) - 1):
        graph_copy.write_bytes(graph[:cut])
        for verify, mmap in ((True, True), (False, True), (False, False)):
            with pytest.raises(engine.CorruptFileError, match=str(main)):
                engine.UsearchIndex.load(main, verify=verify, mmap=mmap)


def _copy_pair(path, folder, name):
    """A copy of a saved index under another name (the header keeps the graph's name)."""
    (folder / name).write_bytes(path.read_bytes())
    graph = graph_file(path)
    (folder / graph.name).write_bytes(graph.read_bytes())
    return folder / name, folder / graph.name


def test_bit_flips_are_refused(saved, tmp_path):
    _, path, _ = saved
    main, graph = _copy_pair(path, tmp_path, path.name)
    blob, gblob = bytearray(main.read_bytes()), bytearray(graph.read_bytes())
    rng = np.random.default_rng(1)
    header = 8 + int.from_bytes(blob[:8], "little")
    for pos in list(rng.integers(0, header, 30)) + list(rng.integers(header, len(blob), 30)):
        flipped = bytearray(blob)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        main.write_bytes(bytes(flipped))
        with pytest.raises(engine.CorruptFileError, match=str(main)):
            engine.UsearchIndex.load(main)
    main.write_bytes(bytes(blob))
    for pos in rng.integers(0, len(gblob), 30):
        flipped = bytearray(gblob)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        graph.write_bytes(bytes(flipped))
        with pytest.raises(engine.CorruptFileError, match="fails its checksum"):
            engine.UsearchIndex.load(main)


def test_foreign_and_inconsistent_files_are_refused(saved, tmp_path):
    index, path, _ = saved
    other = tmp_path / "other.safetensors"
    safetensors.numpy.save_file({"w": np.zeros(3, np.float32)}, str(other))
    vector_index = tmp_path / "vector.idx"
    vi = engine.VectorIndex(4)
    vi.add([1, 2], np.eye(2, 4, dtype=np.float32))
    vi.save(vector_index)
    cases = [other, vector_index]
    for name, blob in {"empty": b"", "text": b"not an index at all" * 20}.items():
        (tmp_path / name).write_bytes(blob)
        cases.append(tmp_path / name)
    missing = tmp_path / "alone" / "missing.uidx"  # its graph file is not beside it
    missing.parent.mkdir()
    missing.write_bytes(path.read_bytes())
    cases.append(missing)
    # Headers that decode but do not describe the files (the graph file is beside them).
    _copy_pair(path, tmp_path, "copy.uidx")
    arrays, meta = _safetensors.read(str(path), mmap=False)
    key = "rank_engine.usearch_index"
    for old, new in [('"format_version":1', '"format_version":2'), ('"dim":32', '"dim":31'),
                     ('"metric":"ip"', '"metric":"cos"'), ('"live":5975', '"live":5976'),
                     ('"storage":"f32"', '"storage":"f16"'), ('"connectivity":16', '"connectivity":8'),
                     ('.usearch"', '.usearch/../x.usearch"'), ('"format":"rank-engine/', '"format":"other/')]:
        assert old in meta[key], old
        bad = tmp_path / f"hdr{len(cases)}.uidx"
        _safetensors.write(str(bad), dict(arrays), {key: meta[key].replace(old, new)})
        cases.append(bad)
    for p in cases:
        with pytest.raises(engine.CorruptFileError, match=str(p)):
            engine.UsearchIndex.load(p)
    with pytest.raises(FileNotFoundError):
        engine.UsearchIndex.load(tmp_path / "nope.uidx")


# -- threads ------------------------------------------------------------------
def test_concurrent_searches_equal_serial(world, built):
    q = world[3][:60]
    extra = ({"ef": 32}, {"ef": 200, "filter": {"shard10": 3}}, {"ef": 100, "filter": {"in_stock": True}})
    jobs = [(m, kw) for m in METRICS for kw in SEARCHES[:5] + extra]
    serial = [built[m].search(q, K, **kw) for m, kw in jobs]

    def run(i):
        m, kw = jobs[i % len(jobs)]
        return i % len(jobs), built[m].search(q, K, **kw)

    with ThreadPoolExecutor(4) as pool:
        for j, (ids, scores) in pool.map(run, range(4 * len(jobs))):
            assert np.array_equal(ids, serial[j][0]) and np.array_equal(scores, serial[j][1], equal_nan=True)


def test_writes_during_searches_are_all_or_nothing(world):
    ids, x, attrs, q = world
    index = build(world, "l2", n=4000)
    universe = set(ids.astype(np.int64).tolist())
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher():
        try:
            while not stop.is_set():
                found, scores = index.search(q[:20], K, filter={"shard10": [1, 2, 3]}, ef=48)
                assert set(found.ravel().tolist()) <= universe
                found, scores = index.search(q[:20], K, filter={"in_stock": True})
                assert set(found.ravel().tolist()) <= universe  # never -1 while 1200+ rows match
                assert np.isfinite(scores).all()
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for b in range(4000, 8000, 500):
        index.add(ids[b:b + 500], x[b:b + 500], {k: v[b:b + 500] for k, v in attrs.items()})
        index.remove(ids[b - 4000:b - 3800])
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(index) == 4000 + 4000 - 8 * 200


def test_importing_engine_does_not_load_usearch():
    """usearch bundles its own C++ runtime, which breaks FAISS if loaded first."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-P", "-c", "import sys, engine; print('usearch' in sys.modules)"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
