"""Real data: item and user vectors factorised from MovieLens 100K ratings.

The shared data set is read in place (its licence forbids redistribution).
Items carry their first genre and release year as attributes; the index is
forced onto its IVF path (the catalogue has only 1,682 items) so that the
partitioned search is checked on real, lumpy embeddings too.
"""

import os
import pathlib

import numpy as np
import pyarrow as pa
import pytest

import engine
from conftest import DATA, exact_topk, recall

ML = DATA / "ml-100k"
# CI always has ../shared/data: there a missing data set is a failure, not a skip.
pytestmark = pytest.mark.skipif(not (ML / "ml-100k.inter").exists() and not os.environ.get("CI"),
                                reason="../shared/data/ml-100k is not beside this checkout")


def _load(path: pathlib.Path) -> list[list[str]]:
    lines = path.read_text(encoding="latin-1").splitlines()[1:]
    return [line.split("\t") for line in lines if line]


@pytest.fixture(scope="module")
def movielens():
    inter = np.array([[int(u), int(i), float(r)] for u, i, r, _ in _load(ML / "ml-100k.inter")])
    users, items = inter[:, 0].astype(int), inter[:, 1].astype(int)
    ratings = np.zeros((users.max() + 1, items.max() + 1), np.float32)
    ratings[users, items] = inter[:, 2] - inter[:, 2].mean()
    u, s, vt = np.linalg.svd(ratings, full_matrices=False)
    dim = 32
    user_vecs = (u[:, :dim] * np.sqrt(s[:dim])).astype(np.float32)[1:]
    item_vecs = (vt[:dim].T * np.sqrt(s[:dim])).astype(np.float32)[1:]
    genres, years = {}, []
    first_genre = []
    for row in _load(ML / "ml-100k.item"):
        years.append(int(row[2]) if len(row) > 2 and row[2].isdigit() else 0)
        g = row[3].split()[0] if len(row) > 3 and row[3] else "unknown"
        first_genre.append(genres.setdefault(g, len(genres)))
    ids = np.arange(1, len(item_vecs) + 1, dtype=np.uint64)
    attrs = pa.table({"genre": np.array(first_genre, np.int32), "year": np.array(years, np.int16),
                      "rated": (ratings[1:, 1:] != 0).sum(0) >= 20})
    return ids, item_vecs, attrs, user_vecs[np.abs(user_vecs).sum(1) > 0][:300]


@pytest.mark.parametrize("storage", ["f32", "i8"])
def test_user_to_item_retrieval_on_real_embeddings(movielens, storage):
    ids, x, attrs, users = movielens
    index = engine.VectorIndex(32, "ip", storage, min_ivf_rows=500, nlist=40)
    index.add(ids, x, attrs)  # attributes as an Arrow table
    assert index.stats()["segments"][0]["nlist"] == 40
    assert index.attributes == {"genre": "int", "year": "int", "rated": "bool"}
    got, _ = index.search(users, 20)
    truth, truth_scores = exact_topk(users, x, ids, 20)
    assert recall(got, truth) >= 0.95
    _, exact_scores = index.search(users, 20, exact=True)
    np.testing.assert_allclose(exact_scores, truth_scores, rtol=1e-4, atol=1e-4)
    genre = attrs.column("genre").to_numpy()
    rated = attrs.column("rated").to_numpy()
    for g in np.unique(genre)[:6]:
        mask = (genre == g) & rated
        got, _ = index.search(users, 10, filter={"genre": int(g), "rated": True})
        truth, _ = exact_topk(users, x, ids, 10, mask=mask)
        assert set(got[got >= 0].tolist()) <= set(ids[mask].tolist())
        assert recall(got, truth) >= 0.95
