"""LightGBM's own predictor: ``Booster.predict(raw_score=True, num_threads=1)``."""

from __future__ import annotations

import os

import lightgbm as lgb

from bench.trees.peers.base import Runtime


class LightGBMPredict(Runtime):
    library = "lightgbm"
    label = "lightgbm"
    reads = ("lightgbm",)

    def prepare(self, spec) -> None:
        self.booster = lgb.Booster(model_file=os.fspath(spec.model_path))
        self.config = "Booster.predict(X, raw_score=True, num_threads=1)"

    def predictor(self):
        booster = self.booster

        def predict(X):
            return booster.predict(X, raw_score=True, num_threads=1)

        return predict
