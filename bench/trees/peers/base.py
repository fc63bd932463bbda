"""What every runtime module provides: load one model, then hand out the callable that is timed.

The callable takes a float32 C-contiguous (rows, features) array, exactly as
the engine does, and returns the raw scores (margins, before any sigmoid):
whatever the library needs to turn that array into its own input (a DMatrix,
float64, a feed dict) happens inside it, so inside the timed region.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]  # (rows, features) float32 -> raw scores


class Unavailable(Exception):
    """This runtime cannot run in this build or environment; the report says why."""


class Runtime:
    library: str = ""  # distribution name, for the version lookup and the report
    label: str = ""  # short name shown in tables and plots
    reads: tuple[str, ...] = ("lightgbm", "xgboost")  # libraries whose models it loads
    is_engine = False

    def __init__(self, artefact_dir: Path) -> None:
        # Compiled artefacts (shared libraries, ONNX files) are cached here, keyed by
        # model and library version, because some take minutes to build.
        self.artefact_dir = artefact_dir
        self.config = ""  # how the model was loaded and is called, one quotable string
        self.cached = False  # True when prepare reused a compiled artefact

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.library)
        except PackageNotFoundError:
            return "?"

    def prepare(self, spec) -> None:
        """Load or compile the model of ``spec`` (a workload.ModelSpec); not timed per call."""
        raise NotImplementedError

    def predictor(self) -> Predict:
        raise NotImplementedError

    def artefact(self, spec, suffix: str) -> Path:
        """A cache path for this runtime's compiled form of ``spec``: named by the model file's
        content, so a retrained model never meets a stale artefact, and the library version."""
        digest = hashlib.sha256(spec.model_path.read_bytes()).hexdigest()[:12]
        tag = re.sub(r"[^\w.]+", "-", f"{self.library}-{self.version()}").strip("-")
        return self.artefact_dir / f"{spec.name}-{digest}.{tag}{suffix}"

    def cached_artefact(self, spec, suffix: str, build: Callable[[Path], None]) -> Path:
        """The artefact of ``spec``, built by ``build(tmp_path)`` unless an earlier run left it."""
        path = self.artefact(spec, suffix)
        self.cached = path.exists()
        if not self.cached:
            tmp = path.with_name(path.stem + ".tmp" + path.suffix)
            build(tmp)
            os.replace(tmp, path)
        return path

    def extra(self) -> dict:
        """Anything else worth recording (engine build, compile parameters...)."""
        return {}
