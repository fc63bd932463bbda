"""The tree-ensemble workload: ranking-like feature rows, the models, and their reference scores.

The driver (``bench.trees.run``) calls ``prepare`` once: it generates the
data and trains (LightGBM / XGBoost) every model it is asked for that it
does not find under ``bench/results/cache/trees/``, keyed by the spec and
``FORMAT``:

- ``<model>.txt`` / ``<model>.json``: the model file every runtime reads;
- ``eval-f<F>.npy``: held-out rows (float32, C order) that every runtime is
  checked and timed on;
- ``<model>.ref.npy``: the training library's own raw scores for those rows.

Workers only ``np.load`` these files and never import a training library
(the lleaves worker runs in a venv of its own, see bench/README.md), so
every runtime sees byte-identical inputs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
CACHE_DIR = RESULTS_DIR / "cache" / "trees"
FORMAT = 1  # bump when the data generator or the training parameters change

TRAIN_ROWS = 30_000  # enough for full 63-leaf / depth-8 trees; training is a one-off of minutes
EVAL_ROWS = 8_192  # two distinct batches of the largest size
TRAIN_SEED, EVAL_SEED = 0, 1
MISSING_RATE = 0.05  # mean share of NaN cells
# One training thread: on a 2-core machine shared with other work, two OpenMP
# threads spin-wait at every barrier and trained 17x slower than one here.
TRAIN_THREADS = 1

# Column kinds of ranking features, repeated across the row: similarity-like
# scores, heavy-tailed prices and counts of views, event counts with many
# zeros, click-through rates, and 0/1 flags.
KINDS = ("continuous", "heavy_tail", "count", "rate", "continuous", "count", "flag",
         "heavy_tail", "continuous", "count")
N_LATENT = 8  # shared factors, so that features are correlated as real ones are


@dataclass(frozen=True)
class ModelSpec:
    """One benchmark model. ``n_trees`` of a family are the first trees of its longest model."""

    library: str  # "lightgbm" or "xgboost": the library that trains it
    n_trees: int
    n_features: int
    num_leaves: int = 0  # LightGBM
    max_depth: int = 0  # XGBoost

    @property
    def shape(self) -> str:
        return f"{self.num_leaves} leaves" if self.library == "lightgbm" else f"depth {self.max_depth}"

    @property
    def name(self) -> str:
        shape = f"l{self.num_leaves}" if self.library == "lightgbm" else f"d{self.max_depth}"
        return f"{self.library}-{shape}-t{self.n_trees}-f{self.n_features}"

    @property
    def title(self) -> str:
        return f"{self.library}, {self.n_trees:,} trees × {self.shape}, {self.n_features} features"

    @property
    def model_path(self) -> Path:
        ext = "txt" if self.library == "lightgbm" else "json"
        return CACHE_DIR / f"{self.name}-v{FORMAT}.{ext}"

    @property
    def reference_path(self) -> Path:
        return CACHE_DIR / f"{self.name}-v{FORMAT}.ref.npy"

    @property
    def eval_path(self) -> Path:
        return eval_path(self.n_features)


# Two training runs per library (1,000 rounds each); the 500-tree models are
# their first 500 trees, which halves the training time (a model already
# cached is kept, so a --quick run trains only the 500 rounds it needs).
MODELS = [
    ModelSpec("lightgbm", t, f, num_leaves=63) for f in (100, 300) for t in (500, 1000)
] + [
    ModelSpec("xgboost", t, f, max_depth=d) for d, f in ((6, 100), (8, 300)) for t in (500, 1000)
]
QUICK_MODELS = ["lightgbm-l63-t500-f100"]
BATCHES = (1, 16, 256, 4096)
QUICK_BATCHES = (1, 256)


def spec_by_name(name: str) -> ModelSpec:
    for spec in MODELS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown model {name!r}; choose from {[m.name for m in MODELS]}")


def eval_path(n_features: int) -> Path:
    return CACHE_DIR / f"eval-f{n_features}-v{FORMAT}.npy"


def make_rows(n_rows: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows (float32, ~5 % NaN) and a 0/1 label drawn from a nonlinear click model."""
    rng = np.random.default_rng([seed, n_features])
    latent = rng.standard_normal((n_rows, N_LATENT))
    loadings = rng.standard_normal((N_LATENT, n_features)) / np.sqrt(N_LATENT)
    z = 0.6 * latent @ loadings + 0.8 * rng.standard_normal((n_rows, n_features))
    X = np.empty((n_rows, n_features), dtype=np.float64)
    for j in range(n_features):
        kind, col = KINDS[j % len(KINDS)], z[:, j]
        if kind == "continuous":
            X[:, j] = col
        elif kind == "heavy_tail":  # lognormal, e.g. price or lifetime views
            X[:, j] = np.exp(1.5 * col + 2.0)
        elif kind == "count":  # events in a window: Poisson with a lognormal rate
            X[:, j] = rng.poisson(np.exp(col))
        elif kind == "rate":  # a CTR-like share in [0, 1]
            X[:, j] = 1.0 / (1.0 + np.exp(-(col - 3.0)))
        else:  # flag
            X[:, j] = col > 0.5

    # The click model reads the values before any go missing, on ~24
    # features, with interactions and thresholds; the rest is noise the trees
    # still split on, as in a real ranking model.
    c = X[:, :30]
    logit = (0.9 * np.tanh(c[:, 0]) + 0.5 * np.log1p(c[:, 1]) - 0.4 * np.sqrt(c[:, 2])
             + 3.0 * c[:, 3] + 0.8 * c[:, 4] * c[:, 8] + 0.6 * (c[:, 5] > 2) + 0.5 * c[:, 6]
             - 0.3 * np.log1p(c[:, 7]) * c[:, 6] + 0.7 * np.sin(2.0 * c[:, 10])
             + 0.4 * np.minimum(c[:, 12], 5) + 0.5 * c[:, 13] * (c[:, 14] > 0)
             + 0.3 * np.abs(c[:, 18]) + 0.4 * c[:, 20] - 0.4 * c[:, 24] * c[:, 28]
             - 2.2)
    label = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)

    missing_rate = rng.uniform(0.0, 2 * MISSING_RATE, size=n_features)
    X[rng.random((n_rows, n_features)) < missing_rate] = np.nan
    return np.ascontiguousarray(X, dtype=np.float32), label


def _family_key(spec: ModelSpec) -> tuple:
    """Models with the same key are prefixes of one training run."""
    return spec.library, spec.num_leaves, spec.max_depth, spec.n_features


def _train(specs: list[ModelSpec], log) -> None:
    """One training run for the longest of ``specs``; each spec saves its first n_trees trees."""
    first = specs[0]
    rounds = max(m.n_trees for m in specs)
    X, y = make_rows(TRAIN_ROWS, first.n_features, TRAIN_SEED)
    X_eval = np.load(first.eval_path)
    t0 = time.perf_counter()
    if first.library == "lightgbm":
        import lightgbm as lgb

        params = {"objective": "binary", "num_leaves": first.num_leaves, "learning_rate": 0.05,
                  "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
                  "num_threads": TRAIN_THREADS, "seed": TRAIN_SEED, "verbose": -1}
        booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=rounds)
        for m in specs:
            _write_atomically(m.model_path, lambda p, m=m: booster.save_model(
                p, num_iteration=m.n_trees))
            reference = lgb.Booster(model_file=os.fspath(m.model_path)).predict(X_eval, raw_score=True)
            _save_npy(m.reference_path, reference)
    else:
        import xgboost as xgb

        params = {"objective": "binary:logistic", "max_depth": first.max_depth, "eta": 0.05,
                  "subsample": 0.8, "colsample_bytree": 0.8, "tree_method": "hist",
                  "nthread": TRAIN_THREADS, "seed": TRAIN_SEED}
        booster = xgb.train(params, xgb.DMatrix(X, y), num_boost_round=rounds)
        for m in specs:
            _write_atomically(m.model_path, lambda p, m=m: booster[:m.n_trees].save_model(p))
            prefix = xgb.Booster(model_file=os.fspath(m.model_path))
            _save_npy(m.reference_path, prefix.inplace_predict(X_eval, predict_type="margin"))
    log(f"trained {', '.join(m.name for m in specs)} in {time.perf_counter() - t0:.0f} s")


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)  # keep the suffix: it names the format
    write(os.fspath(tmp))
    os.replace(tmp, path)


def _save_npy(path: Path, array: np.ndarray) -> None:
    _write_atomically(path, lambda p: np.save(p, np.asarray(array, dtype=np.float64)))


def prepare(specs: list[ModelSpec], log=print) -> None:
    """Generate the held-out rows and train (or find cached) every model in ``specs``."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for n_features in sorted({m.n_features for m in specs}):
        if not eval_path(n_features).exists():
            X_eval, _ = make_rows(EVAL_ROWS, n_features, EVAL_SEED)
            _write_atomically(eval_path(n_features), lambda p, X=X_eval: np.save(p, X))
    missing = [m for m in specs if not (m.model_path.exists() and m.reference_path.exists())]
    for key in dict.fromkeys(_family_key(m) for m in missing):
        _train([m for m in missing if _family_key(m) == key], log)
    if len(missing) < len(specs):
        log(f"{len(specs) - len(missing)} model(s) from {CACHE_DIR.relative_to(RESULTS_DIR.parent)}/")


def load_eval(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows and the training library's raw scores on them (float64)."""
    return np.load(spec.eval_path), np.load(spec.reference_path)
