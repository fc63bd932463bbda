"""What the ranking tests (engine.losses, engine.metrics) share.

LightGBM's lambdarank example (../shared/data/lambdarank), read in place:
LightGBM reads the libsvm files itself (with the ``.query`` group files beside
them); labels, group sizes and a dense matrix for XGBoost are read here.
"""

import os

import numba
import numpy as np
import pytest

from conftest import DATA

LAMBDARANK = DATA / "lambdarank"
# CI always has ../shared/data: there a missing data set is a failure, not a skip.
requires_data = pytest.mark.skipif(not (LAMBDARANK / "rank.train").exists() and not os.environ.get("CI"),
                                   reason="../shared/data/lambdarank is not beside this checkout")


def path(name: str) -> str:
    return str(LAMBDARANK / name)


def labels(name: str) -> np.ndarray:
    with open(path(name)) as lines:
        return np.array([float(line.split(maxsplit=1)[0]) for line in lines])


def group_sizes(name: str) -> np.ndarray:
    return np.loadtxt(path(name + ".query"), dtype=np.int64)


def lightgbm_params(**extra) -> dict:
    """Small, single-threaded and deterministic: the suite runs on 2 shared cores."""
    return {"objective": "lambdarank", "learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 20,
            "num_threads": 1, "deterministic": True, "force_row_wise": True, "seed": 0, "verbose": -1,
            **extra}


def features(name: str) -> np.ndarray:
    """The libsvm rows as a dense float32 matrix (column j holds feature id j; column 0 is empty)."""
    with open(path(name)) as lines:
        rows = [line.split()[1:] for line in lines]
    matrix = np.zeros((len(rows), 301), np.float32)
    for i, row in enumerate(rows):
        pairs = np.array([pair.split(":") for pair in row], dtype=np.float64).reshape(-1, 2)
        matrix[i, pairs[:, 0].astype(int)] = pairs[:, 1]
    return matrix


@pytest.fixture
def one_numba_thread():
    """For tests that make many small kernel calls: on a busy 2-core machine each
    2-thread launch can wait on OpenMP's spinning threads for a scheduler tick
    (README: Threads). Results do not depend on the thread count (tested)."""
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
