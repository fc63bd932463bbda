"""The multi-objective value model: a per-surface blend of model heads and
business terms.

A platform does not rank by click probability alone: an order is worth its
price (or margin) and some merchants are worth promoting. Each term of the
blend is a weight times a product of named factors, for example::

    ValueModel(terms=[
        ValueTerm("click", 1.0, ["p_click"]),
        ValueTerm("gmv", 0.02, ["p_click", "p_order", "price"]),
        ValueTerm("merchant", 0.1, ["merchant_boost"]),
    ])

gives ``value = 1.0 * p_click + 0.02 * p_click * p_order * price + 0.1 *
merchant_boost``. A factor names a model head (``p_click``), an item column
of the bundle's item table (``price``, ``margin``, ``merchant_boost``) or
``retrieval_score`` (the candidate's ANN / popularity score, the only factor
a bundle without models has). A surface's first-phase model may also use
``head[:T]``, the raw score of a head's first T trees. Every term is returned
and logged next to the heads, so the blend can be re-weighted offline from
the logs.
"""

from __future__ import annotations

import re

import msgspec
import numpy as np

RETRIEVAL_SCORE = "retrieval_score"
_PREFIX = re.compile(r"^(?P<head>[^\[\]]+)\[:(?P<trees>[0-9]+)\]$")


def prefix_factor(name: str) -> tuple[str, int] | None:
    """``"p_click[:50]"`` -> ("p_click", 50): the raw score of a head's first 50 trees,
    a factor only a first-phase model may use; None for any other factor."""
    m = _PREFIX.match(name)
    return None if m is None else (m["head"], int(m["trees"]))


class ValueTerm(msgspec.Struct, array_like=True, frozen=True):
    name: str
    weight: float
    factors: list[str]


class ValueModel(msgspec.Struct, kw_only=True, frozen=True):
    terms: list[ValueTerm]

    def __post_init__(self) -> None:
        if not self.terms:
            raise ValueError("value model: needs at least one term")
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ValueError(f"value model: term names must be unique, got {names}")
        for t in self.terms:
            if not t.factors:
                raise ValueError(f"value model term {t.name!r}: needs at least one factor")
            if not np.isfinite(t.weight):
                raise ValueError(f"value model term {t.name!r}: weight must be finite, got {t.weight}")

    @property
    def factors(self) -> set[str]:
        return {f for t in self.terms for f in t.factors}

    def check(self, available: set[str], where: str) -> None:
        """Raise if a factor is neither a head, an item column nor the retrieval score."""
        missing = sorted(self.factors - available - {RETRIEVAL_SCORE})
        if missing:
            raise ValueError(
                f"{where}: value model factor(s) {missing} are not model heads or item columns "
                f"(available: {sorted(available)})"
            )

    def compile(self, heads: list[str], columns: dict[str, np.ndarray], n_items: int):
        """The blend as one native call over a request's candidates (`_core.ValueBlend`,
        equal to `evaluate` bit for bit): factors are the ``heads`` (columns of the
        heads matrix), the retrieval score, or ``columns`` (item columns of
        ``n_items`` values, gathered at the candidates' rows)."""
        from engine import _core

        names = sorted(self.factors)
        factors = [-1 if f == RETRIEVAL_SCORE else heads.index(f) if f in heads else columns[f] for f in names]
        return _core.ValueBlend([t.weight for t in self.terms], [[names.index(f) for f in t.factors] for t in self.terms],
                                factors, n_items, len(heads))

    def evaluate(self, factors: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(total value, {term name: weighted term}) over the candidates, float32."""
        total = None
        terms = {}
        for t in self.terms:
            product = factors[t.factors[0]].astype(np.float32, copy=True)
            for name in t.factors[1:]:
                product *= factors[name]
            product *= np.float32(t.weight)
            terms[t.name] = product
            total = product.copy() if total is None else total.__iadd__(product)
        return total, terms
