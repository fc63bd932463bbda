"""One module per runtime; ``RUNTIMES`` maps a runtime name to (module, class).

Modules are imported only inside the worker that runs them, so a missing
library (ImportError) skips that runtime with a note instead of failing the
run, and the lleaves worker (its own venv) never imports the others.
"""

RUNTIMES: dict[str, tuple[str, str]] = {
    "engine": ("bench.trees.peers.rank_engine", "EngineForest"),
    "xgboost": ("bench.trees.peers.xgboost_inplace", "XGBoostInplace"),
    "lightgbm": ("bench.trees.peers.lightgbm_predict", "LightGBMPredict"),
    "tl2cgen": ("bench.trees.peers.tl2cgen_compiled", "TL2cgenCompiled"),
    "lleaves": ("bench.trees.peers.lleaves_compiled", "LleavesCompiled"),
    "onnxruntime": ("bench.trees.peers.onnxruntime_trees", "OnnxRuntimeTrees"),
}
ORDER = list(RUNTIMES)
