"""VectorIndex files: round trips, atomic writes, and refusal of damaged or foreign files."""

import os

import numpy as np
import pytest
import safetensors.numpy

import engine
from conftest import clustered, queries_like


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    ids, x, attrs = clustered(22_000, 12, seed=8)
    index = engine.VectorIndex(12, "cos", "i8")
    index.add(ids[:21_000], x[:21_000], {k: v[:21_000] for k, v in attrs.items()})
    index.add(ids[21_000:], x[21_000:], {k: v[21_000:] for k, v in attrs.items()})
    index.remove(ids[:50])
    path = tmp_path_factory.mktemp("idx") / "catalogue.idx"
    index.save(path)
    return index, path, queries_like(x, 40)


@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip_gives_identical_answers(saved, mmap):
    index, path, q = saved
    loaded = engine.VectorIndex.load(path, mmap=mmap)
    assert len(loaded) == len(index) and loaded.attributes == index.attributes
    assert (loaded.dim, loaded.metric, loaded.storage) == (12, "cos", "i8")
    for kw in ({}, {"exact": True}, {"filter": {"in_stock": False, "category_id": [1, 2]}}):
        a, b = index.search(q, 10, **kw), loaded.search(q, 10, **kw)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # The loaded index stays live.
    attrs = {"merchant_id": np.zeros(1, np.int64), "category_id": np.zeros(1, np.int64),
             "in_stock": np.zeros(1, bool)}
    loaded.add([10**12], np.ones((1, 12), np.float32), attrs)
    assert len(loaded) == len(index) + 1


def test_exported_segment_arrays_are_read_only(saved):
    # save() writes these views of an immutable segment; nothing may write through them.
    index, _, _ = saved
    arrays = index._native.segments()[0]["arrays"]
    assert not any(a.flags.writeable for a in arrays.values())
    with pytest.raises(ValueError, match="read-only"):
        arrays["vectors"][0] = 1.0


def test_file_is_plain_safetensors(saved):
    _, path, _ = saved
    tensors = safetensors.numpy.load_file(str(path))
    assert any(name.endswith(".vectors") for name in tensors)


def test_save_leaves_no_temporary_files(saved, tmp_path):
    index, _, _ = saved
    target = tmp_path / "a.idx"
    index.save(target)
    index.save(target)  # overwrite in place
    assert os.listdir(tmp_path) == ["a.idx"]


def test_truncated_files_are_refused(saved, tmp_path):
    _, path, _ = saved
    blob = path.read_bytes()
    rng = np.random.default_rng(0)
    cuts = sorted(set([0, 1, 7, 8, 9, 100, len(blob) // 2, len(blob) - 1] +
                      rng.integers(0, len(blob), 40).tolist()))
    for cut in cuts:
        bad = tmp_path / f"cut{cut}.idx"
        bad.write_bytes(blob[:cut])
        with pytest.raises(engine.CorruptFileError, match=str(bad)):
            engine.VectorIndex.load(bad)


def test_bit_flips_are_refused(saved, tmp_path):
    _, path, _ = saved
    blob = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(blob[:8], "little")
    rng = np.random.default_rng(1)
    positions = list(rng.integers(0, header, 120)) + list(rng.integers(header, len(blob), 120))
    bad = tmp_path / "flip.idx"
    for pos in positions:
        flipped = bytearray(blob)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        bad.write_bytes(bytes(flipped))
        with pytest.raises(engine.CorruptFileError):
            engine.VectorIndex.load(bad)


def test_unverified_bit_flips_never_crash(saved, tmp_path):
    """Without the checksum pass, structure is still validated: flips load or raise, never crash."""
    _, path, q = saved
    blob = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(blob[:8], "little")
    rng = np.random.default_rng(2)
    bad = tmp_path / "flip.idx"
    for pos in rng.integers(header, len(blob), 150):
        flipped = bytearray(blob)
        flipped[pos] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        try:
            loaded = engine.VectorIndex.load(bad, verify=False, mmap=False)
        except engine.CorruptFileError:
            continue
        loaded.search(q[:4], 5)
        loaded.search(q[:4], 5, filter={"in_stock": True})


def test_foreign_files_are_refused(tmp_path):
    cases = {
        "empty.idx": b"",
        "text.idx": b"hello world, this is not an index" * 10,
        "json.idx": (20).to_bytes(8, "little") + b'{"a": 1}' + b" " * 12,
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
    other = tmp_path / "other.safetensors"
    safetensors.numpy.save_file({"w": np.zeros(3, np.float32)}, str(other))
    for p in [tmp_path / n for n in cases] + [other]:
        with pytest.raises(engine.CorruptFileError, match=str(p)):
            engine.VectorIndex.load(p)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        engine.VectorIndex.load(tmp_path / "nope.idx")


def test_safetensors_round_trip_of_empty_and_2d_arrays(tmp_path):
    from engine import _safetensors

    arrays = {"empty2d": np.zeros((0, 3), np.float32), "empty": np.zeros(0, np.uint8),
              "m": np.arange(6, dtype=np.int64).reshape(2, 3)}
    _safetensors.write(str(tmp_path / "t.safetensors"), dict(arrays), {"k": "v"})
    for mmap in (True, False):
        got, meta = _safetensors.read(str(tmp_path / "t.safetensors"), mmap=mmap)
        assert meta == {"k": "v"}
        for name, a in arrays.items():
            assert got[name].shape == a.shape and np.array_equal(got[name], a)
    only_empty = {"e": np.zeros((0,), np.float32)}
    _safetensors.write(str(tmp_path / "e.safetensors"), only_empty, {})
    assert _safetensors.read(str(tmp_path / "e.safetensors"))[0]["e"].shape == (0,)
