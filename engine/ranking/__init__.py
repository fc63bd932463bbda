"""The request path: `Ranker` and its request / response types, value model and stage settings."""

from engine.ranking.request import RankRequest, RankResponse
from engine.ranking.settings import RerankPolicy, SurfaceSettings
from engine.ranking.value_model import ValueModel, ValueTerm


def __getattr__(name: str):
    # The Ranker loads bundles, and the bundle manifest embeds the settings
    # above: importing the Ranker lazily keeps `engine.bundle` importable
    # from `engine.ranking.settings` without a cycle.
    if name == "Ranker":
        from engine.ranking.ranker import Ranker

        return Ranker
    raise AttributeError(f"module 'engine.ranking' has no attribute {name!r}")


__all__ = ["Ranker", "RankRequest", "RankResponse", "RerankPolicy", "SurfaceSettings", "ValueModel", "ValueTerm"]
