"""The request path: `Ranker` and its request / response types, value model and stage settings."""

from engine.ranking.ranker import Ranker
from engine.ranking.request import RankRequest, RankResponse
from engine.ranking.settings import RerankPolicy, SurfaceSettings
from engine.ranking.value_model import ValueModel, ValueTerm

__all__ = ["Ranker", "RankRequest", "RankResponse", "RerankPolicy", "SurfaceSettings", "ValueModel", "ValueTerm"]
