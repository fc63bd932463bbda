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
    cheap blend of ``retrieval_score``, item columns and the raw scores of
    heads' first trees (``p_click[:50]``) scores every candidate and only the
    best ``rerank_count`` go on to the full heads and the value model. The
    heads' cost, most of a request's, falls in proportion; items the first
    phase drops cannot be shown. Multiples of 64 are cheapest per row: the
    forest walks whole blocks of 64 rows together and the rest 8 at a time
    (at 1,000 trees of 63 leaves, 150 rows cost 84 us more than 128).
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


def check_surfaces(surfaces: dict[str, SurfaceSettings], head_trees: dict[str, int], columns: set[str]) -> None:
    """Every factor of every surface exists: value models read heads, item columns and
    the retrieval score; first phases read item columns, the retrieval score and
    ``head[:T]`` prefixes of single-output heads (``head_trees``: head -> its tree count)."""
    from engine.ranking.value_model import prefix_factor

    if not surfaces:
        raise ValueError("surfaces: needs at least one surface")
    for name, s in surfaces.items():
        s.value_model.check(set(head_trees) | columns, f"surfaces[{name!r}]")
        if s.first_phase is None:
            continue
        prefixes = set()
        for factor in s.first_phase.factors:
            prefix = prefix_factor(factor)
            if prefix is None:
                continue
            head, trees = prefix
            if head not in head_trees or not 1 <= trees <= head_trees[head]:
                raise ValueError(f"surfaces[{name!r}].first_phase: {factor!r} needs a head of at least {trees} "
                                 f"trees (heads: {head_trees})")
            prefixes.add(factor)
        s.first_phase.check(columns | prefixes, f"surfaces[{name!r}].first_phase")
