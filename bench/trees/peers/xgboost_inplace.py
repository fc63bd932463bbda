"""XGBoost's own predictor: ``Booster.inplace_predict`` on the numpy array, one thread."""

from __future__ import annotations

import os

import xgboost as xgb

from bench.trees.peers.base import Runtime


class XGBoostInplace(Runtime):
    library = "xgboost-cpu"
    label = "xgboost"
    reads = ("xgboost",)

    def version(self) -> str:
        return xgb.__version__

    def prepare(self, spec) -> None:
        self.booster = xgb.Booster(model_file=os.fspath(spec.model_path))
        self.booster.set_param({"nthread": 1})
        self.config = "Booster.inplace_predict(X, predict_type='margin'), nthread=1"

    def predictor(self):
        booster = self.booster

        def predict(X):
            return booster.inplace_predict(X, predict_type="margin")

        return predict
