"""Every SIMD level the CPU supports agrees with the scalar reference."""

import os
import subprocess
import sys

import numpy as np
import pytest

import engine
from engine import _core

# Kernel tables: every level plus variants within one (AVX-512 with VNNI).
TABLES = _core.kernels.tables()
LEVELS = engine.build_info()["simd_supported"]
SIZES = [1, 3, 15, 16, 17, 31, 64, 97, 256]


def test_build_info_reports_level_compiler_version():
    info = engine.build_info()
    assert info["simd"] in ("avx512", "avx2", "scalar")
    assert info["simd"] in info["simd_supported"]
    assert info["compiler"] and info["version"] == engine.__version__
    assert info["kernels"] in TABLES and info["kernels"].startswith(info["simd"])


@pytest.mark.parametrize("level", TABLES)
@pytest.mark.parametrize("dim", SIZES)
def test_dot_f32_matches_scalar_and_numpy(level, dim):
    rng = np.random.default_rng(dim)
    rows = rng.standard_normal((37, dim)).astype(np.float32)
    q = rng.standard_normal(dim).astype(np.float32)
    got = _core.kernels.dot(level, q, rows)
    ref = _core.kernels.dot("scalar", q, rows)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.sqrt(dim))
    np.testing.assert_allclose(got, rows.astype(np.float64) @ q, rtol=1e-5, atol=1e-5 * np.sqrt(dim))
    idx = rng.integers(0, 37, 11).astype(np.uint32)
    np.testing.assert_allclose(_core.kernels.dot(level, q, rows, idx), got[idx], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("level", TABLES)
@pytest.mark.parametrize("dim", SIZES)
def test_dot_f16_and_i8_match_scalar(level, dim):
    rng = np.random.default_rng(100 + dim)
    q = rng.standard_normal(dim).astype(np.float32)
    half = rng.standard_normal((21, dim)).astype(np.float16)
    bits = half.view(np.uint16)
    np.testing.assert_allclose(_core.kernels.dot(level, q, bits), half.astype(np.float64) @ q,
                               rtol=1e-5, atol=1e-4)
    # int8 codes and queries are symmetric ([-127, 127]); the products are exact.
    codes = rng.integers(-127, 128, (21, dim)).astype(np.int8)
    codes[0] = 127
    q8 = rng.integers(-127, 128, dim).astype(np.int8)
    q8[0] = -127  # the extremes must not overflow
    got = _core.kernels.dot(level, q8, codes)
    assert got.dtype == np.int32
    assert np.array_equal(got, codes.astype(np.int64) @ q8.astype(np.int64))
    idx = np.array([20, 0, 3, 3], np.uint32)
    assert np.array_equal(_core.kernels.dot(level, q8, codes, idx), got[idx])


@pytest.mark.parametrize("level", TABLES)
@pytest.mark.parametrize("n", [1, 15, 16, 17, 40])
@pytest.mark.parametrize("dim", [1, 3, 4, 7, 64, 97, 130])
def test_dot_i8_blocked_matches_row_dot(level, n, dim):
    # The centroid layout: 16 rows x 4 dims interleaved, padded with zero rows
    # and dims; 130 dims are more groups than the AVX-512 kernel holds at once.
    rng = np.random.default_rng(n * 1000 + dim)
    codes = rng.integers(-127, 128, (n, dim)).astype(np.int8)
    q8 = rng.integers(-127, 128, dim).astype(np.int8)
    q8[0], codes[0, 0] = -127, 127
    got = _core.kernels.dot_i8_blocked(level, q8, codes)
    assert got.dtype == np.int32 and got.shape == (n,)
    assert np.array_equal(got, codes.astype(np.int64) @ q8.astype(np.int64))


@pytest.mark.parametrize("level", TABLES)
@pytest.mark.parametrize("n", [1, 16, 31, 32, 33, 70])
@pytest.mark.parametrize("dim", [1, 3, 4, 7, 64, 97, 130])
def test_dot_u4_blocked_matches_row_dot(level, n, dim):
    # The layout of long exact scans: 32 rows x 4 dims a 64-byte group, rows
    # 16-31 in the high nibbles; the extremes (15 x -128, 15 x 127) included.
    rng = np.random.default_rng(n * 1000 + dim + 7)
    codes = rng.integers(0, 16, (n, dim)).astype(np.uint8)
    w = rng.integers(-128, 128, dim).astype(np.int8)
    codes[0, 0], w[0] = 15, -128
    codes[-1, -1], w[-1] = 15, 127
    got = _core.kernels.dot_u4_blocked(level, w, codes)
    assert got.dtype == np.int32 and got.shape == (n,)
    assert np.array_equal(got, codes.astype(np.int64) @ w.astype(np.int64))


@pytest.mark.parametrize("level", TABLES)
@pytest.mark.parametrize("n", [0, 1, 7, 8, 15, 16, 17, 256, 301])
def test_above_i32_lists_positions_above_the_bound(level, n):
    rng = np.random.default_rng(n)
    x = rng.integers(-1000, 1000, n).astype(np.int32)
    for bound in (-(2**31), -1, 0, 500, 999, 2**31 - 1):
        got = _core.kernels.above_i32(level, x, bound)
        assert np.array_equal(got, np.flatnonzero(x > bound).astype(np.uint32))


def test_dot_u4_blocked_refuses_wide_codes():
    with pytest.raises(ValueError, match="codes"):
        _core.kernels.dot_u4_blocked("scalar", np.ones(4, np.int8), np.full((2, 4), 16, np.uint8))


@pytest.mark.parametrize("level", TABLES)
@pytest.mark.parametrize("nq", [1, 3, 4, 5, 9])
def test_dot_multi_matches_single(level, nq):
    rng = np.random.default_rng(nq)
    rows = rng.standard_normal((50, 97)).astype(np.float32)
    qs = rng.standard_normal((nq, 97)).astype(np.float32)
    got = _core.kernels.dot_multi(level, qs, rows)
    np.testing.assert_allclose(got, qs.astype(np.float64) @ rows.T.astype(np.float64), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("level", TABLES)
def test_f16_conversion_is_round_to_nearest_even(level):
    rng = np.random.default_rng(7)
    values = np.concatenate([
        rng.standard_normal(1000).astype(np.float32) * 10.0 ** rng.integers(-9, 6, 1000),
        np.array([0.0, -0.0, 65504.0, 65520.0, 1e9, -1e9, 6e-8, 3e-8, np.inf, -np.inf], np.float32),
    ]).astype(np.float32)
    got = _core.kernels.f32_to_f16(level, values)
    with np.errstate(over="ignore"):  # overflow to inf is the expected rounding
        expected = values.astype(np.float16).view(np.uint16)
    assert np.array_equal(got, expected)


def test_unsupported_level_is_a_clear_error():
    with pytest.raises(ValueError, match="level"):
        _core.kernels.dot("sse9", np.zeros(4, np.float32), np.zeros((1, 4), np.float32))


def _run(env_value: str, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ENGINE_SIMD=env_value)
    # -P: import the installed package, not the source folder in the cwd.
    return subprocess.run([sys.executable, "-P", "-c", code], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("level", LEVELS)
def test_engine_simd_forces_a_lower_level(level):
    out = _run(level, "import engine; print(engine.build_info()['simd'])")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == level


def test_engine_simd_rejects_unknown_values():
    out = _run("avx1024", "import engine")
    assert out.returncode != 0 and "ENGINE_SIMD" in out.stderr


SEARCH_SCRIPT = """
import numpy as np, sys, engine
sys.path.insert(0, {tests!r})
from conftest import clustered, queries_like
ids, x, attrs = clustered(25_000, 33)
q = queries_like(x, 40)
out = {{}}
for storage in ("f32", "f16", "i8"):
    index = engine.VectorIndex(33, "ip", storage)
    index.add(ids, x, attrs)
    for name, kw in {{"approx": {{}}, "exact": {{"exact": True}}, "filtered": {{"filter": {{"in_stock": True}}}}}}.items():
        i, s = index.search(q, 10, **kw)
        out[f"{{storage}}_{{name}}_ids"] = i
        out[f"{{storage}}_{{name}}_scores"] = s
    # One query at a time with most lists probed: a merchant's exact scan, from
    # 4-bit codes for i8 (ann/search.cpp, scan_nibbles).
    store = [index.search(v, 10, filter={{"merchant_id": 1}}, ef=900) for v in q]
    out[f"{{storage}}_store_ids"] = np.vstack([i for i, _ in store])
    out[f"{{storage}}_store_scores"] = np.vstack([s for _, s in store])
np.savez({path!r}, **out)
"""


def test_search_results_agree_across_levels(tmp_path):
    """The same index built and searched under each level gives the same answers."""
    tests = os.path.dirname(__file__)
    results = {}
    for level in LEVELS:
        path = str(tmp_path / f"{level}.npz")
        out = _run(level, SEARCH_SCRIPT.format(tests=tests, path=path))
        assert out.returncode == 0, out.stderr
        results[level] = dict(np.load(path))
    ref = results["scalar"]
    for level, res in results.items():
        for key in ref:
            if key.endswith("_scores"):
                np.testing.assert_allclose(res[key], ref[key], rtol=1e-4, atol=1e-4, err_msg=f"{level} {key}")
            else:
                # Near-ties may swap under different summation orders: compare as sets.
                overlap = np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(res[key], ref[key])])
                assert overlap >= 0.99, f"{level} {key}: {overlap}"
