"""A surface's first-phase model, prepared once per bundle.

The first phase scores every candidate with a cheap blend (raw scores of
heads' first trees, item columns, the retrieval score) and keeps the
``rerank_count`` best for the full heads. Preparing it at load leaves a
request three native calls: the trees of each prefix range, the blend
(`_core.ValueBlend`, equal to `ValueModel.evaluate` bit for bit) and the
selection. Done per request in Python (parsing ``p_click[:50]``, finding
the head's trees, a numpy blend) it cost ~45 us of a two-phase request's
~1 ms once the request's search had evicted the interpreter's caches.
"""

from __future__ import annotations

import numpy as np

from engine import _core
from engine.ranking.value_model import ValueModel, prefix_factor


class FirstPhase:
    """``ranges`` (tree ranges of the prefix factors) and ``blend`` (a
    `_core.ValueBlend` over their raw scores): what `_core.SurfaceScorer` runs;
    ``keep(X, rows, retrieval, count)``: positions of the ``count`` best candidates."""

    def __init__(self, model: ValueModel, forest, columns: dict[str, np.ndarray], n_items: int) -> None:
        # One predict_trees call per tree range; its output columns are the
        # blend's "heads", named by the prefix factors they hold (a range
        # repeats only if two names mean the same trees: p_click[:5], [:05]).
        groups: list[tuple[tuple[int, int], dict[int, str]]] = []
        for name in sorted(model.factors):
            prefix = prefix_factor(name)
            if prefix is None:
                continue
            begin, end, first, _ = forest.prefix_trees(*prefix)
            group = next((g for r, g in groups if r == (begin, end) and first not in g), None)
            if group is None:
                groups.append(((begin, end), group := {}))
            group[first] = name
        self._forest = forest
        self.ranges = [r for r, _ in groups]
        width = len(forest.output_names) if forest is not None else 0  # no models: no prefixes either
        heads = [g.get(j, f"\0unused {i}.{j}") for i, (_, g) in enumerate(groups) for j in range(width)]
        self.blend = model.compile(heads, columns, n_items)  # over the ranges' raw scores side by side

    def keep(self, X: np.ndarray, rows: np.ndarray, retrieval: np.ndarray, count: int) -> np.ndarray:
        """The first phase step by step (the request path runs it inside `_core.SurfaceScorer`)."""
        scores = [self._forest.predict_trees(X, begin, end) for begin, end in self.ranges]
        if not scores:
            scores = np.empty((len(rows), 0), np.float32)
        elif len(scores) == 1:
            scores = scores[0]
        else:
            scores = np.hstack(scores)
        value, _ = self.blend.evaluate(rows, scores, retrieval)
        return _core.best_positions(value, count)
