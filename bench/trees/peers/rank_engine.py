"""rank-engine: ``engine.compile_forest`` to a .forest file, ``engine.Forest.load``, ``predict(X, output='raw', threads=1)``.

The compile is redone on every run (it is part of what the engine ships, and
its time is reported); the file goes to the artefact directory.
"""

from __future__ import annotations

import os

from bench.machine import import_engine, loaded_engine_build
from bench.trees.peers.base import Runtime, Unavailable

engine = import_engine()  # waits out a rebuild of the native module in progress
LOADED_BUILD = loaded_engine_build(engine)


class EngineForest(Runtime):
    library = "rank-engine"
    label = "engine"
    is_engine = True

    def __init__(self, artefact_dir) -> None:
        super().__init__(artefact_dir)
        if not (hasattr(engine, "compile_forest") and hasattr(engine, "Forest")):
            raise Unavailable("engine.Forest not available in this build")

    def version(self) -> str:
        return engine.__version__

    def prepare(self, spec) -> None:
        path = self.artefact(spec, ".forest")
        engine.compile_forest(os.fspath(spec.model_path), os.fspath(path))
        self.forest = engine.Forest.load(os.fspath(path))
        self.config = "compile_forest(model file); Forest.load; predict(X, output='raw', threads=1)"

    def predictor(self):
        forest = self.forest

        def predict(X):
            return forest.predict(X, output="raw", threads=1)

        return predict

    def extra(self) -> dict:
        return {"build_info": engine.build_info(), **LOADED_BUILD}
