"""Bundles: build, manifest, and refusal of missing, corrupt or mismatched parts."""

import json
import os
import shutil
from pathlib import Path

import pytest

from engine.bundle import build_bundle, read_manifest
from engine.errors import BundleError
from engine.quickstart import spec as world_spec
from engine.ranking import Ranker, SurfaceSettings, ValueModel, ValueTerm


@pytest.fixture
def bundle_copy(pipeline, tmp_path):
    path = tmp_path / "bundle"
    shutil.copytree(pipeline.bundle, path)
    return str(path)


def test_manifest_lists_every_artefact(pipeline):
    m = read_manifest(pipeline.bundle)
    assert set(m.artefacts) == {"items", "item_vectors", "index", "candidates", "forest", "users", "user_vectors"}
    assert m.heads == ["p_click", "p_order"]
    assert m.model_versions == {"p_click": "t1", "p_order": "t1"}
    assert list(m.feature_spec.names) == list(pipeline.spec.names)
    assert sorted(m.surfaces) == ["home", "search", "store"]
    assert all(len(a.sha256) == 64 for a in m.artefacts.values())


def test_missing_artefact(bundle_copy):
    os.remove(os.path.join(bundle_copy, "index.rei"))
    with pytest.raises(BundleError, match="index.rei: artefact 'index' is missing"):
        Ranker.load(bundle_copy)


def test_changed_artefact(bundle_copy):
    path = os.path.join(bundle_copy, "items.arrow")
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0x01
    Path(path).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="items.arrow: artefact 'items' does not match its SHA-256"):
        Ranker.load(bundle_copy)


def test_truncated_artefact_without_checksums(bundle_copy):
    path = os.path.join(bundle_copy, "forest.ref")
    Path(path).write_bytes(Path(path).read_bytes()[:-100])
    with pytest.raises(BundleError, match="forest.ref: artefact 'forest' has"):
        Ranker.load(bundle_copy, verify=False)


def test_bad_manifest(bundle_copy):
    path = os.path.join(bundle_copy, "manifest.json")
    raw = json.loads(Path(path).read_text())
    raw["format_version"] = 99
    Path(path).write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="version 99"):
        Ranker.load(bundle_copy)
    Path(path).write_text("{not json")
    with pytest.raises(BundleError, match="invalid bundle manifest"):
        Ranker.load(bundle_copy)


def test_manifest_inconsistent_with_items(pipeline, bundle_copy):
    """An item table whose bytes match the manifest but whose row count does not."""
    from engine.bundle.manifest import describe

    shutil.copyfile(os.path.join(pipeline.logging_bundle, "items.arrow"), os.path.join(bundle_copy, "items.arrow"))
    m = read_manifest(bundle_copy)
    m.artefacts["items"] = describe(bundle_copy, "items.arrow")
    import msgspec

    Path(bundle_copy, "manifest.json").write_bytes(msgspec.json.encode(m))
    Ranker.load(bundle_copy)  # same item table bytes in both bundles: still consistent
    m.n_items += 1
    Path(bundle_copy, "manifest.json").write_bytes(msgspec.json.encode(m))
    with pytest.raises(BundleError, match="items.arrow: expected"):
        Ranker.load(bundle_copy)


def test_build_refuses_what_does_not_fit(pipeline, tmp_path):
    world = pipeline.world
    items = world_spec.items_table(world)
    common = dict(item_vectors=world.item_vectors, feature_spec=pipeline.spec,
                  surfaces=world_spec.surfaces(trained=False))
    with pytest.raises(ValueError, match="price"):
        build_bundle(tmp_path / "a", items=items.drop_columns(["price"]), **common)
    with pytest.raises(ValueError, match="item_vectors: expected"):
        build_bundle(tmp_path / "b", items=items, **{**common, "item_vectors": world.item_vectors[:10]})
    bad_surface = {"home": SurfaceSettings(value_model=ValueModel(terms=[ValueTerm("x", 1.0, ["p_click"])]))}
    with pytest.raises(ValueError, match=r"surfaces\['home'\].*p_click"):
        build_bundle(tmp_path / "c", items=items, **{**common, "surfaces": bad_surface})
    with pytest.raises(FileExistsError):
        build_bundle(pipeline.bundle, items=items, **common)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".bundle-")]  # no temporary leftovers


def test_with_surfaces_reuses_artefacts(pipeline, tmp_path):
    import msgspec

    from engine.bundle import with_surfaces
    from engine.ranking import ValueModel, ValueTerm

    surfaces = world_spec.surfaces(trained=True)
    surfaces["home"] = msgspec.structs.replace(
        surfaces["home"], value_model=ValueModel(terms=[ValueTerm("order", 1.0, ["p_click", "p_order"])]))
    out = with_surfaces(pipeline.bundle, tmp_path / "v2", surfaces)
    old, new = read_manifest(pipeline.bundle), read_manifest(out)
    assert new.bundle_version != old.bundle_version
    assert new.artefacts == old.artefacts and new.surfaces["home"].value_model.terms[0].name == "order"
    with Ranker.load(out) as ranker:
        assert ranker.bundle_version == new.bundle_version
    bad = {"home": msgspec.structs.replace(surfaces["home"], value_model=ValueModel(
        terms=[ValueTerm("x", 1.0, ["p_view"])]))}
    with pytest.raises(ValueError, match=r"surfaces\['home'\].*p_view"):
        with_surfaces(pipeline.bundle, tmp_path / "v3", bad)
    assert not (tmp_path / "v3").exists()


def _rewrite_manifest(folder, **changes):
    import msgspec

    from engine.bundle.manifest import describe

    m = read_manifest(folder)
    artefacts = {k: describe(folder, a.path) for k, a in m.artefacts.items()}
    m = msgspec.structs.replace(m, artefacts=artefacts, **changes)
    Path(folder, "manifest.json").write_bytes(msgspec.json.encode(m))


def test_forest_of_another_spec_is_refused(bundle_copy, tmp_path):
    """A forest whose features are not the spec's, with checksums that match: refused by name."""
    import lightgbm as lgb
    import numpy as np

    import engine

    rng = np.random.default_rng(0)
    X = rng.random((200, 3))
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
                        lgb.Dataset(X, rng.random(200) < 0.5), num_boost_round=3)
    engine.compile_forest({"p_click": booster, "p_order": booster}, tmp_path / "other.ref",
                          feature_names=["a", "b", "c"])
    shutil.copyfile(tmp_path / "other.ref", os.path.join(bundle_copy, "forest.ref"))
    _rewrite_manifest(bundle_copy)
    with pytest.raises(BundleError, match="forest.ref: its features differ from the bundle's feature spec"):
        Ranker.load(bundle_copy)


def test_artefact_path_cannot_leave_the_bundle(bundle_copy):
    import msgspec

    m = read_manifest(bundle_copy)
    m.artefacts["items"] = msgspec.structs.replace(m.artefacts["items"], path="../items.arrow")
    Path(bundle_copy, "manifest.json").write_bytes(msgspec.json.encode(m))
    with pytest.raises(BundleError, match="leaves the bundle folder"):
        Ranker.load(bundle_copy)


def test_ranker_reads_the_index_copy_of_item_vectors(pipeline):
    """A built bundle's index holds every item vector (shared_vectors.py): the
    ranker reads those rows, and features and candidate scores keep their bytes."""
    import numpy as np

    from engine import _core
    from engine.bundle.serving import Serving, _read_arrow
    from engine.features import FeatureAssembler

    s = Serving(pipeline.bundle)
    assert s.vector_rows is not None and s.vectors is not s.item_vectors
    has = np.flatnonzero(s.item_vectors.any(axis=1))
    assert (s.vector_rows[has] >= 0).all() and (s.vector_rows >= 0).sum() == len(has)
    items = _read_arrow(os.path.join(pipeline.bundle, s.manifest.artefacts["items"].path))
    plain = FeatureAssembler(s.manifest.feature_spec, items, s.item_vectors)
    rng = np.random.default_rng(1)
    rows = rng.integers(0, s.manifest.n_items, 300)
    user = s.user_vectors[np.flatnonzero(s.user_has_vector)[0]]
    request = {f: None for f in s.manifest.feature_spec.request_fields} | {"user_vector": user}
    assert s.assembler.assemble(rows, request).tobytes() == plain.assemble(rows, request).tobytes()
    none = np.empty(0, np.int64)
    merged = _core.merge_candidates([rows], [None], [1], none, s.manifest.n_items, s.vectors, user, s.vector_rows)
    expected = _core.merge_candidates([rows], [None], [1], none, s.manifest.n_items, s.item_vectors, user)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(merged, expected))


def test_index_vectors_that_disagree_with_item_vectors_are_refused(pipeline):
    import numpy as np

    from engine.bundle.serving import Serving
    from engine.bundle.shared_vectors import index_vectors

    s = Serving(pipeline.bundle)
    changed = np.array(s.item_vectors)
    row = int(np.flatnonzero(changed.any(axis=1))[5])
    changed[row, 0] = np.nextafter(changed[row, 0], np.float32(2))
    with pytest.raises(BundleError, match="index: its vectors differ from item_vectors"):
        index_vectors(s.index, changed, verify=True)
    outside = np.array(s.item_vectors)
    outside[int(np.flatnonzero(~outside.any(axis=1))[0]), 3] = 1.0
    with pytest.raises(BundleError, match="an item outside the index has a non-zero vector"):
        index_vectors(s.index, outside, verify=True)
    with pytest.raises(BundleError, match="index: holds item row"):
        index_vectors(s.index, s.item_vectors[:10], verify=True)
    assert index_vectors(s.index, changed, verify=False) is not None  # checks skipped, as for checksums
    # An index with deletions keeps its removed rows' vectors: the bundle's copy is read instead.
    s.index.remove([int(s.index._native.segments()[0]["arrays"]["ids"][0])])
    assert index_vectors(s.index, s.item_vectors, verify=True) is None
