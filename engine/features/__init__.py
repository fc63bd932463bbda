"""Feature rows for the ranking models: a FeatureSpec (what to compute, stored as
JSON) and the native FeatureAssembler (online per request, offline over logs;
the same bytes either way)."""

from engine.features.assembler import FeatureAssembler
from engine.features.spec import Bucket, Cross, Dot, Feature, FeatureSpec, Hashed, Lookup, Match, Numeric

__all__ = [
    "FeatureSpec", "FeatureAssembler", "Feature", "Numeric", "Bucket", "Hashed", "Cross", "Dot", "Lookup",
    "Match",
]
