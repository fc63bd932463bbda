"""Bad input raises ValueError / TypeError naming the argument; good input is converted, not reinterpreted."""

import numpy as np
import pytest

import engine


@pytest.fixture()
def index():
    idx = engine.VectorIndex(4)
    idx.add([1, 2, 3], np.eye(4, dtype=np.float32)[:3],
            {"merchant_id": np.array([5, 6, 7]), "in_stock": np.array([True, False, True])})
    return idx


Q = np.ones(4, np.float32)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(dim=0), ValueError, "dim"),
    (dict(dim=4.5), TypeError, "dim"),
    (dict(dim=4, metric="dot"), ValueError, "metric"),
    (dict(dim=4, storage="f8"), ValueError, "storage"),
    (dict(dim=4, nlist=0), ValueError, "nlist"),
    (dict(dim=70_000), ValueError, "dim: at most 65536"),
])
def test_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        engine.VectorIndex(**kwargs)


@pytest.mark.parametrize("ids, vectors, error, match", [
    ([4], np.ones((1, 3), np.float32), ValueError, "vectors: expected 4 columns"),
    ([4, 5], np.ones((1, 4), np.float32), ValueError, "vectors: expected 2 rows"),
    ([4], np.array([[1, np.nan, 0, 0]], np.float32), ValueError, "vectors: row 0 contains NaN"),
    ([4], np.array([[1, np.inf, 0, 0]], np.float32), ValueError, "vectors: row 0 contains NaN or infinity"),
    ([4], np.ones((1, 4), np.int32), TypeError, "vectors: expected floating-point"),
    ([4], np.ones((1, 2, 2), np.float32), ValueError, "vectors: expected a 1-D or 2-D"),
    ([-1], np.ones((1, 4), np.float32), ValueError, "ids: ids must be >= 0"),
    ([1.5], np.ones((1, 4), np.float32), TypeError, "ids: expected integer"),
    (np.array([2**63], np.uint64), np.ones((1, 4), np.float32), ValueError, "ids: ids must be <= 2"),
    ([8, 8], np.ones((2, 4), np.float32), ValueError, "ids: duplicate id 8"),
    ([1], np.ones((1, 4), np.float32), ValueError, "ids: id 1 is already in the index"),
])
def test_add_rejects(index, ids, vectors, error, match):
    attrs = {"merchant_id": np.zeros(len(ids), np.int64), "in_stock": np.ones(len(ids), bool)}
    with pytest.raises(error, match=match):
        index.add(ids, vectors, attrs)
    assert len(index) == 3


@pytest.mark.parametrize("attrs, error, match", [
    ({"merchant_id": [1, 2]}, ValueError, r"attributes\['merchant_id'\]: expected 1 values"),
    ({"merchant_id": ["a"], "in_stock": [True]}, TypeError, r"attributes\['merchant_id'\]: expected integer or boolean"),
    ({"merchant_id": [1.0], "in_stock": [True]}, TypeError, "merchant_id"),
    ({"merchant_id": [1]}, ValueError, "attributes: the index has columns"),
    ({"merchant_id": [1], "in_stock": [1]}, ValueError, "attributes: the index has columns"),
    (None, ValueError, "attributes: the index has columns"),
    ([1, 2], TypeError, "attributes: expected a dict"),
])
def test_add_rejects_attributes(index, attrs, error, match):
    with pytest.raises(error, match=match):
        index.add([9], np.ones((1, 4), np.float32), attrs)


@pytest.mark.parametrize("call, error, match", [
    (dict(queries=np.ones(3, np.float32), k=1), ValueError, "queries: expected 4 columns"),
    (dict(queries=np.array([np.nan, 0, 0, 0], np.float32), k=1), ValueError, "queries: row 0 contains NaN"),
    (dict(queries=Q, k=0), ValueError, "k: must be >= 1"),
    (dict(queries=Q, k=-3), ValueError, "k: must be >= 1"),
    (dict(queries=Q, k=2.0), TypeError, "k: expected an integer"),
    (dict(queries=Q, k=True), TypeError, "k: expected an integer"),
    (dict(queries=Q, k=1, ef=0), ValueError, "ef"),
    (dict(queries=Q, k=1, threads=0), ValueError, "threads"),
    (dict(queries=Q, k=1, filter={"color": 1}), ValueError, "filter: unknown attribute 'color'"),
    (dict(queries=Q, k=1, filter={"merchant_id": True}), TypeError, r"filter\['merchant_id'\]: attribute is integer"),
    (dict(queries=Q, k=1, filter={"merchant_id": 1.5}), TypeError, r"filter\['merchant_id'\]"),
    (dict(queries=Q, k=1, filter={"merchant_id": "5"}), TypeError, r"filter\['merchant_id'\]"),
    (dict(queries=Q, k=1, filter={"in_stock": 1}), TypeError, r"filter\['in_stock'\]: attribute is boolean"),
    (dict(queries=Q, k=1, filter={"merchant_id": 2**64}), ValueError, "does not fit in int64"),
    (dict(queries=Q, k=1, filter="merchant_id=5"), TypeError, "filter: expected a dict"),
    (dict(queries=Q, k=1, filter=np.array([1.0, 2.0])), TypeError, "filter: expected integer ids"),
])
def test_search_rejects(index, call, error, match):
    with pytest.raises(error, match=match):
        index.search(**call)


def test_remove_rejects_bad_ids(index):
    with pytest.raises(TypeError, match="ids"):
        index.remove(np.array([1.0]))
    with pytest.raises(ValueError, match="id 42 is not in the index"):
        index.remove([42])


def test_cosine_refuses_zero_vectors():
    index = engine.VectorIndex(3, "cos")
    with pytest.raises(ValueError, match="vectors: row 1 is the zero vector"):
        index.add([1, 2], np.array([[1, 0, 0], [0, 0, 0]], np.float32))
    index.add([1], np.array([[1, 0, 0]], np.float32))
    with pytest.raises(ValueError, match="queries: row 0 is the zero vector"):
        index.search(np.zeros(3, np.float32), 1)


def test_conversions_keep_values(index):
    """float64, non-contiguous and Fortran-ordered inputs are converted, never reinterpreted."""
    base = np.random.default_rng(0).standard_normal((6, 8))
    wide = engine.VectorIndex(4)
    wide.add(np.arange(3, dtype=np.int32), base[:3, ::2])  # float64, strided view
    ref = engine.VectorIndex(4)
    ref.add(np.arange(3, dtype=np.uint64), np.ascontiguousarray(base[:3, ::2], dtype=np.float32))
    q = np.asfortranarray(base[3:, ::2])
    a, b = wide.search(q, 3, exact=True), ref.search(q.astype(np.float32), 3, exact=True)
    assert np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1])
    assert index.search(Q, 1, filter={"merchant_id": np.int32(6)})[0][0, 0] == 2
    assert index.search(Q, 1, filter={"in_stock": np.bool_(False)})[0][0, 0] == 2


@pytest.mark.parametrize("value, kind", [(True, "bool"), (False, "bool"), (0, "int"), (-5, "int"),
                                         (2**63 - 1, "int"), (-(2**63), "int")])
def test_scalar_filter_values_equal_their_one_element_lists(value, kind):
    """A plain scalar takes a shorter path (the request path's case): same int64 values."""
    from engine._validate import filter_values

    got, ref = filter_values("x", value, kind), filter_values("x", [value], kind)
    assert got.dtype == ref.dtype == np.int64 and got.tolist() == ref.tolist()


def test_arrow_and_polars_inputs_give_numpy_results():
    pa = pytest.importorskip("pyarrow")
    pl = pytest.importorskip("polars")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 8)).astype(np.float32)
    ids = np.arange(100, 150, dtype=np.uint64)
    attrs = {"merchant_id": rng.integers(0, 5, 50), "in_stock": rng.random(50) < 0.5}
    ref = engine.VectorIndex(8)
    ref.add(ids, x, attrs)
    arrow = engine.VectorIndex(8)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 8)
    arrow.add(pa.array(ids), pa.chunked_array([vectors[:20], vectors[20:]]), pa.table(attrs))
    polars = engine.VectorIndex(8)
    polars.add(pl.Series(ids), pl.Series(x.tolist(), dtype=pl.Array(pl.Float32, 8)), pl.DataFrame(attrs))
    q = pl.Series(x[:3].tolist(), dtype=pl.Array(pl.Float32, 8))
    want = ref.search(x[:3], 5, filter={"in_stock": True})
    for index in (arrow, polars):
        got = index.search(q, 5, filter={"in_stock": True})
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_arrow_nulls_and_wrong_types_name_the_argument():
    pa = pytest.importorskip("pyarrow")
    index = engine.VectorIndex(2)
    with_null = pa.array([[1.0, 2.0], None], type=pa.list_(pa.float32(), 2))
    with pytest.raises(ValueError, match="vectors: .*null"):
        index.add([1, 2], with_null)
    with pytest.raises(TypeError, match="vectors"):
        index.add([1], pa.array([["a", "b"]]))
    with pytest.raises(ValueError, match="attributes.*null"):
        index.add([1], np.ones((1, 2), np.float32), pa.table({"m": pa.array([None], pa.int64())}))

