"""The impression record: what one ranking response served, as the logger takes it."""

from __future__ import annotations

import msgspec
import numpy as np


class ImpressionRecord(msgspec.Struct, frozen=True):
    """One ranking response: the items shown, in position order, with the
    scores, features and propensities they were served with.

    Per-item arrays all have length ``n`` (the number of items shown).
    ``ImpressionLogger.log()`` checks each record: one that does not fit this
    description is counted in ``LoggerStats.rejected`` (the reason names the
    field) and never reaches a file.

    - ``item_ids``: uint64 (n,); any integer dtype with non-negative values is accepted.
    - ``positions``: int32 (n,), 0-based; any integer dtype with values in [0, 2**31).
    - ``value``, each ``components`` entry: float32 (n,).
    - ``features``: float32 (n, n_features), the feature rows as served.
    - ``user_vector``: float32 (dim,) or None.
    - ``propensities``, ``choice_probabilities``: float64 (n,) in [0, 1], or None.
    - ``feature_names``: None, or one name per feature column.
    - ``context``: str keys; values int, float, str, bool or dict[int, float].
      Stored as JSON text: non-finite floats become null.

    Float arrays of another float dtype are cast (float64 values are rounded
    to float32 as the schema stores them); records holding the documented
    dtypes read back bit for bit.
    """

    request_id: str
    timestamp_us: int
    user_id: int | None
    surface: str
    context: dict
    user_vector: np.ndarray | None
    item_ids: np.ndarray
    positions: np.ndarray
    value: np.ndarray
    components: dict[str, np.ndarray]
    features: np.ndarray
    feature_names: tuple[str, ...] | None = None
    propensities: np.ndarray | None = None
    choice_probabilities: np.ndarray | None = None
    bundle_version: str = ""
    model_versions: dict[str, str] = {}
