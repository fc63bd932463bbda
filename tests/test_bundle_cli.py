"""`rank-engine bundle`: the command line builds the same bundle as the function."""

import json

import msgspec
import numpy as np
import pyarrow.parquet as pq

from engine.bundle import read_manifest
from engine.quickstart import spec as world_spec
from engine.ranking import Ranker
from tools.cli import main


def test_bundle_command(pipeline, tmp_path, capsys):
    world = pipeline.world
    pq.write_table(world_spec.items_table(world), tmp_path / "items.parquet")
    np.save(tmp_path / "vectors.npy", world.item_vectors)
    (tmp_path / "spec.json").write_text(pipeline.spec.to_json())
    surfaces = world_spec.surfaces(trained=False, popularity=True)
    (tmp_path / "surfaces.json").write_bytes(msgspec.json.encode(surfaces))
    out = tmp_path / "bundle"
    code = main(["bundle", "-o", str(out), "--items", str(tmp_path / "items.parquet"),
                 "--item-vectors", str(tmp_path / "vectors.npy"), "--spec", str(tmp_path / "spec.json"),
                 "--surfaces", str(tmp_path / "surfaces.json"), "--popularity", "review_count",
                 "--forest", str(pipeline.bundle) + "/forest.ref"])
    assert code == 0, capsys.readouterr().err
    assert "heads ['p_click', 'p_order']" in capsys.readouterr().out
    m = read_manifest(out)
    assert m.heads == ["p_click", "p_order"] and m.n_items == world.n_items
    with Ranker.load(out) as ranker:
        assert ranker.bundle_version == m.bundle_version


def test_bundle_command_errors(tmp_path, capsys):
    (tmp_path / "spec.json").write_text(json.dumps({"features": []}))
    code = main(["bundle", "-o", str(tmp_path / "b"), "--items", str(tmp_path / "missing.parquet"),
                 "--item-vectors", "x.npy", "--spec", str(tmp_path / "spec.json"), "--surfaces", "s.json"])
    assert code == 2
    assert "rank-engine bundle:" in capsys.readouterr().err
