"""Per-surface stage settings of a bundle: how many candidates each source
brings, how the value model blends the heads, and the re-rank policy."""

from __future__ import annotations

import msgspec

from engine.ranking.value_model import ValueModel


class RerankPolicy(msgspec.Struct, kw_only=True, frozen=True):
    """Business rules and exploration (cpp/rerank/rerank.hpp has the exact rules).

    ``temperature`` > 0 samples the shown order from a Plackett-Luce
    distribution over the value scores (exploration) and logs propensities
    estimated from ``propensity_samples`` re-draws; 0 is greedy.
    ``explore_window``: only the best this-many candidates are sampled.
    """

    max_per_merchant: int = 0
    max_per_category: int = 0
    category_decay: float = 1.0
    temperature: float = 0.0
    explore_window: int = 100
    propensity_samples: int = 200

    def __post_init__(self) -> None:
        for name in ("max_per_merchant", "max_per_category", "explore_window", "propensity_samples"):
            if getattr(self, name) < 0:
                raise ValueError(f"rerank.{name}: expected >= 0, got {getattr(self, name)}")
        if not 0.0 < self.category_decay <= 1.0:
            raise ValueError(f"rerank.category_decay: expected a value in (0, 1], got {self.category_decay}")
        if not 0.0 <= self.temperature < float("inf"):
            raise ValueError(f"rerank.temperature: expected a finite value >= 0, got {self.temperature}")


class SurfaceSettings(msgspec.Struct, kw_only=True, frozen=True):
    """One surface (home feed, search, store page).

    ``ann_candidates``: nearest items to the user vector (with the request's
    filters); ``popular_candidates``: the most popular items in the
    request's scope (merchant for a store page, category for search, all
    otherwise), also the whole candidate set of a cold-start request;
    ``new_item_candidates``: the newest items without embeddings in scope,
    so new listings get shown before they have a vector. ``ann_ef``: the
    index's recall knob (None: its default).

    Two-phase ranking (as Vespa's first-phase / second-phase with
    ``rerank-count``): with ``first_phase`` set and ``rerank_count`` > 0, a
    cheap blend of ``retrieval_score`` and item columns (no heads) scores
    every candidate and only the best ``rerank_count`` go on to features,
    heads and the value model. The heads' cost, most of a request's, falls
    in proportion; items the first phase drops cannot be shown.
    """

    value_model: ValueModel
    rerank: RerankPolicy = RerankPolicy()
    k: int = 20
    ann_candidates: int = 400
    popular_candidates: int = 100
    new_item_candidates: int = 20
    ann_ef: int | None = None
    first_phase: ValueModel | None = None
    rerank_count: int = 0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k: expected >= 1, got {self.k}")
        for name in ("ann_candidates", "popular_candidates", "new_item_candidates", "rerank_count"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)}")
