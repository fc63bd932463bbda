"""engine.compile_forest: XGBoost / LightGBM models -> one Forest file."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from engine.forest import forest_file
from engine.forest.forest import Forest
from engine.forest.ir import HeadIR
from engine.forest.validate_ir import validate_head

Progress = Callable[[str], None]


def compile_forest(
    models: Any,
    path: str | os.PathLike,
    feature_names: Sequence[str] | None = None,
    *,
    optional_features: Sequence[str] = (),
    progress: Progress | None = None,
) -> Forest:
    """Compile trained tree models into one Forest file at ``path`` and load it.

    ``models``: an ``xgboost.Booster`` / ``lightgbm.Booster`` (or their
    scikit-learn wrappers), a model file path (XGBoost ``.json`` / ``.ubj``,
    LightGBM text), or a dict of head name -> either; a single model becomes
    the head ``"score"``. Heads are evaluated in one pass; their features are
    matched by name (the models' own names, or ``feature_names``, which
    names the columns of every model by index and overrides what the files
    say). ``optional_features`` may be absent from Arrow inputs (read as
    missing). Unsupported model features (linear trees, other link
    functions, ...) raise ``ValueError``; nothing is compiled approximately.
    """
    say = progress or (lambda message: None)
    named = dict(models) if isinstance(models, Mapping) else {"score": models}
    if not named:
        raise ValueError("models: no models given")
    heads = []
    for name, model in named.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"models: head names must be non-empty strings, got {name!r}")
        started = time.perf_counter()
        head = parse_model(model, name)
        say(f"parsed head {name!r}: {head.source}, {head.n_trees} trees, {head.n_nodes} nodes "
            f"({time.perf_counter() - started:.1f} s)")
        heads.append(head)
    write_forest(heads, path, feature_names, optional_features=optional_features, progress=say)
    return Forest.load(path)


def write_forest(heads: list[HeadIR], path: str | os.PathLike, feature_names: Sequence[str] | None = None,
                 *, optional_features: Sequence[str] = (), progress: Progress | None = None) -> None:
    """Write parsed heads (HeadIR) as one Forest file: features unified by
    name, every head validated first."""
    say = progress or (lambda message: None)
    for h in heads:
        validate_head(h)
    names, heads = _unify_features(heads, feature_names)
    optional = list(dict.fromkeys(optional_features))
    unknown = sorted(set(optional) - set(names))
    if unknown:
        raise ValueError(f"optional_features: {unknown} are not features of the models")
    header = forest_file.Header(
        format=forest_file.FORMAT, format_version=forest_file.FORMAT_VERSION, n_features=len(names),
        feature_names=names, optional_features=optional,
        heads=[forest_file.head_meta(h) for h in heads],
    )
    started = time.perf_counter()
    forest_file.write(os.fspath(path), header, forest_file.concatenate(heads))
    say(f"wrote {os.fspath(path)} ({time.perf_counter() - started:.1f} s)")


def parse_model(model: Any, name: str) -> HeadIR:
    """One model (Booster, scikit-learn wrapper, file path) -> its HeadIR."""
    module = type(model).__module__.split(".")[0]
    if module == "xgboost":
        from engine.forest.xgboost_model import parse_xgboost

        booster = model.get_booster() if hasattr(model, "get_booster") else model
        return parse_xgboost(booster, name)
    if module == "lightgbm":
        from engine.forest.lightgbm_model import parse_lightgbm

        booster = getattr(model, "booster_", model)
        return parse_lightgbm(booster, name)
    if isinstance(model, (str, os.PathLike)):
        return _parse_file(os.fspath(model), name)
    raise TypeError(f"models[{name!r}]: expected an XGBoost or LightGBM Booster or a model file path, "
                    f"got {type(model).__name__}")


def _parse_file(path: str, name: str) -> HeadIR:
    from engine.forest.lightgbm_model import parse_lightgbm
    from engine.forest.xgboost_model import parse_xgboost

    try:
        with open(path, "rb") as f:
            start = f.read(64).lstrip()
    except OSError as e:
        raise ValueError(f"models[{name!r}]: cannot read {path}: {e.strerror}") from None
    if path.endswith((".json", ".ubj")) or start[:1] == b"{":
        return parse_xgboost(path, name)
    if start.startswith((b"tree\n", b"tree\r\n", b"version=")):
        return parse_lightgbm(path, name)
    raise ValueError(f"models[{name!r}]: {path} is neither an XGBoost JSON / UBJSON model "
                     "nor a LightGBM model text file")


def _unify_features(heads: list[HeadIR], feature_names: Sequence[str] | None) -> tuple[list[str], list[HeadIR]]:
    """One feature list for all heads (first appearance order), and the heads'
    feature ids remapped into it."""
    if feature_names is not None:
        given = [str(n) for n in feature_names]
        if len(set(given)) != len(given):
            raise ValueError("feature_names: duplicate names")
        for h in heads:
            if h.n_features != len(given):
                raise ValueError(f"feature_names: {len(given)} names, but head {h.name!r} has "
                                 f"{h.n_features} features")
    names: list[str] = []
    index: dict[str, int] = {}
    remapped = []
    for h in heads:
        own = given if feature_names is not None else (
            list(h.feature_names) or [f"f{i}" for i in range(h.n_features)])
        if len(own) != h.n_features or len(set(own)) != len(own):
            raise ValueError(f"models[{h.name!r}]: feature names missing, duplicated or not one per "
                             "feature; pass feature_names")
        for n in own:
            if n not in index:
                index[n] = len(names)
                names.append(n)
        mapping = np.array([index[n] for n in own], dtype=np.int32)
        feature = np.where(h.feature >= 0, mapping[np.maximum(h.feature, 0)], -1).astype(np.int32)
        remapped.append(dataclasses.replace(h, feature=feature, feature_names=own))
    n = len(names)
    return names, [dataclasses.replace(h, n_features=n) for h in remapped]
