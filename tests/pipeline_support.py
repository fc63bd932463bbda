"""A small generated world served end to end, shared by the pipeline tests.

Builds (once per session) a logging bundle, serves a few hundred requests
through it with the impression log on, simulates feedback, trains two small
LightGBM heads on the logged features and builds the trained bundle, i.e.
the quickstart in miniature.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from engine import _core
from engine.bundle import build_bundle
from engine.datasets import make_world
from engine.impressions import ImpressionLogger, read_impressions
from engine.quickstart import spec as world_spec
from engine.quickstart.run import serve
from engine.quickstart.train import train_heads, training_rows
from engine.ranking import Ranker
from engine.ranking.ranker import SOURCE_ANN, SOURCE_NEW, SOURCE_POPULAR


@dataclass
class Pipeline:
    world: object
    spec: object
    logging_bundle: str
    bundle: str
    log_dir: str
    requests: list


def build_pipeline(folder: str, *, n_items: int = 4000, n_users: int = 600, dim: int = 16,
                   n_requests: int = 400) -> Pipeline:
    world = make_world(n_items=n_items, n_users=n_users, dim=dim, n_merchants=60, n_categories=12, seed=7)
    spec = world_spec.feature_spec()
    common = dict(items=world_spec.items_table(world), item_vectors=world.item_vectors, feature_spec=spec,
                  users=world.users.select(["user_id", "segment"]), user_vectors=world.user_vectors,
                  popularity="review_count", threads=1)
    logging_bundle = build_bundle(os.path.join(folder, "bundle-logging"),
                                  surfaces=world_spec.surfaces(trained=False, explore=True), **common)
    log_dir = os.path.join(folder, "logs")
    requests = world.sample_requests(n_requests, seed=1)
    with ImpressionLogger(log_dir) as logger, Ranker.load(logging_bundle, logger=logger) as ranker:
        shown, _ = serve(ranker, requests, world_spec.K, explore=None, threads=1, desc="", progress=False)
    clicks, orders = world.simulate_feedback(requests, shown, seed=2)
    X, clicked, ordered = training_rows(read_impressions(log_dir), [r["request_id"] for r in requests],
                                        clicks, orders)
    models = train_heads(X, clicked, ordered, list(spec.names), rounds=20, threads=1)
    bundle = build_bundle(os.path.join(folder, "bundle"), surfaces=world_spec.surfaces(trained=True),
                          models=models, model_versions={"p_click": "t1", "p_order": "t1"}, **common)
    return Pipeline(world, spec, logging_bundle, bundle, log_dir, requests)


def rank_request(world_request: dict, **overrides):
    from engine.quickstart.run import to_rank_request

    r = to_rank_request(world_request)
    for name, value in overrides.items():
        setattr(r, name, value)
    return r


def same_response(a, b) -> bool:
    return (a.bundle_version == b.bundle_version and np.array_equal(a.item_ids, b.item_ids)
            and np.array_equal(a.value.view(np.uint32), b.value.view(np.uint32)))


def candidates_step_by_step(s, settings, filters: dict, user_vector, recent: np.ndarray):
    """Serving.candidates.run (the ranker's one native call) step by step, the
    reference the tests compare it with: (item rows, source code, retrieval
    score), deduplicated, recent items removed."""
    parts, codes, scores = [], [], []
    n_popular = settings.popular_candidates
    if user_vector is not None and settings.ann_candidates:
        ids, sim = s.index.search(user_vector, settings.ann_candidates, filter=filters or None,
                                  ef=settings.ann_ef)
        found = ids[0] >= 0
        parts.append(ids[0][found])
        codes.append(SOURCE_ANN)
        scores.append(sim[0][found])
    else:
        n_popular += settings.ann_candidates  # a cold start fills the ANN share from popularity
    for code, name, n in ((SOURCE_POPULAR, "popular", n_popular), (SOURCE_NEW, "new", settings.new_item_candidates)):
        r = s.lists.rows(name, filters, s.attributes, n)
        parts.append(r)
        codes.append(code)
        if user_vector is not None:  # scored natively, for the rows kept only
            scores.append(None)
        else:  # rank order within the list, in (0, 1]
            scores.append((1.0 - np.arange(len(r)) / max(len(r), 1)).astype(np.float32))
    # The first copy of each row (ANN before popular before new), recent items dropped.
    if user_vector is None:
        return _core.merge_candidates(parts, scores, codes, recent, s.manifest.n_items)
    return _core.merge_candidates(parts, scores, codes, recent, s.manifest.n_items, s.vectors, user_vector,
                                  s.vector_rows)
