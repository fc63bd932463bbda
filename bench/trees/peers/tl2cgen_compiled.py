"""Treelite + TL2cgen: the model compiled to C by tl2cgen, built with gcc, called through ``tl2cgen.Predictor``.

Timed per call: ``tl2cgen.DMatrix(X)`` (which copies the rows into
tl2cgen's own matrix) and ``Predictor.predict(..., pred_margin=True)``: the
DMatrix is the only way to hand rows to a tl2cgen predictor from Python, as
the engine's own input checks are inside its call.
"""

from __future__ import annotations

import os
from importlib.metadata import version

import tl2cgen
import treelite

from bench.trees.peers.base import Runtime

# Compile parameters: the trees are split over this many C files so that gcc
# can build them in parallel (it changes nothing in the generated code);
# quantize=1 replaces float threshold compares by integer bin compares,
# tl2cgen's own speed option: on the 500-tree LightGBM model it took 51 µs per
# batch-1 call and 8.8 ms per 256 rows against 97 µs and 17 ms without it.
PARAMS = {"parallel_comp": 8, "quantize": 1}
BUILD_THREADS = 2  # gcc jobs; predictions themselves run on nthread=1


def load_treelite(spec) -> treelite.Model:
    if spec.library == "lightgbm":
        return treelite.frontend.load_lightgbm_model(spec.model_path)
    return treelite.frontend.load_xgboost_model(spec.model_path, format_choice="json")


class TL2cgenCompiled(Runtime):
    library = "tl2cgen"
    label = "treelite+tl2cgen"

    def version(self) -> str:
        return f"{version('tl2cgen')} (treelite {version('treelite')})"

    def prepare(self, spec) -> None:
        libpath = self.cached_artefact(
            spec, f"-{'-'.join(f'{k}{v}' for k, v in PARAMS.items())}.so",
            lambda tmp: tl2cgen.export_lib(load_treelite(spec), toolchain="gcc", libpath=os.fspath(tmp),
                                           params=PARAMS, nthread=BUILD_THREADS))
        self.lib = tl2cgen.Predictor(os.fspath(libpath), nthread=1)
        self.config = (f"export_lib(gcc -O3, params={PARAMS}); Predictor(nthread=1)"
                       ".predict(DMatrix(X), pred_margin=True)")

    def predictor(self):
        lib = self.lib

        def predict(X):
            return lib.predict(tl2cgen.DMatrix(X), pred_margin=True)

        return predict
