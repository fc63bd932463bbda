"""Tree ensembles: XGBoost / LightGBM models compiled into the engine's Forest
format and evaluated by the native core (see ir.py for the canonical form)."""

from engine.forest.compile import compile_forest
from engine.forest.forest import Forest

__all__ = ["Forest", "compile_forest"]
