"""lleaves: the LightGBM model compiled by LLVM, ``Model.predict(X, n_jobs=1)``.

lleaves 1.3 needs ``llvmlite<0.45``, which the project's own dependencies
cannot share an environment with, so this module runs in a venv of its own
(bench/README.md). Its default fp64 build is used: it converts the float32
rows to float64 inside ``predict``, so inside the timed region.
"""

from __future__ import annotations

import os

import lleaves

from bench.trees.peers.base import Runtime


class LleavesCompiled(Runtime):
    library = "lleaves"
    label = "lleaves"
    reads = ("lightgbm",)

    def prepare(self, spec) -> None:
        # lleaves reuses a cache file as is ("no effort is made to check staleness"):
        # the file name carries the model's name, format version and lleaves version.
        cache = self.artefact(spec, "-raw.bin")
        self.cached = cache.exists()
        self.model = lleaves.Model(model_file=os.fspath(spec.model_path))
        self.model.compile(cache=os.fspath(cache), raw_score=True)
        self.config = "Model.compile(raw_score=True), predict(X, n_jobs=1)"

    def predictor(self):
        model = self.model

        def predict(X):
            return model.predict(X, n_jobs=1)

        return predict
