"""FeatureSpec: which features a ranking model reads, in which column order.

A spec is a list of features, each a msgspec Struct tagged by ``kind``; it is
stored as JSON (``to_json`` / ``from_json``) beside the models trained on it.
Structs are frozen and hold tuples: a spec is a value, safe to share.

A *source* names one input value:
  ``"item.<column>"``    a column of the item table
  ``"request.<field>"``  a field of the request context (the request dict
                         online, a column of the logged table offline)

Kinds (output value as float32, one column each):
  ``numeric(name, source, default=0.0)``
      the value; a missing field, a null or NaN gives ``default``.
  ``bucket(name, source, boundaries, default=-1.0)``
      the number of boundaries <= value (``np.searchsorted(boundaries,
      value, side="right")``); missing gives ``default``.
  ``hashed(name, source, buckets)``
      a categorical value hashed into [0, buckets).
  ``cross(name, sources, buckets)``
      2+ categorical values (item and request) hashed together in order.
  ``dot(name)``
      the request's ``user_vector`` . the item's vector; no user vector -> 0.
  ``lookup(name, field, key, default=0.0)``
      ``request[field][item's key column]``, a per-request map such as
      ``{category_id: clicks}``; missing map, key, null or NaN -> ``default``.
  ``match(name, sources)``
      1.0 when two categorical values are present and equal, else 0.0.

Categorical values and the hash (fixed: trained models depend on it; see
cpp/features/hash.hpp). A value's 64-bit *code* is its two's-complement
pattern for ints and bools (so int -1 and uint64 2**64 - 1 are one category),
FNV-1a 64 of the UTF-8 bytes for strings, and FNV-1a 64 of the byte 0xFF when
missing (no UTF-8 string contains that byte). With ``mix`` the splitmix64
output function and ``reduce(h, n) = (h * n) >> 64``:
  hashed  ``reduce(mix(code), buckets)``
  cross   ``h = 0; for code in sources: h = mix(h ^ code); reduce(h, buckets)``
Bucket ids are written as float32, hence ``buckets <= 2**24``.

``version`` is the spec's own revision: bump it whenever a feature's meaning
changes, so logs and bundles can say which spec produced a row.
"""

from __future__ import annotations

import itertools
import math
import numbers

import msgspec

ITEM = "item."
REQUEST = "request."
# Request field names with another meaning: the dot product's user vector,
# and the columns that name each row's item in an offline table.
RESERVED_FIELDS = ("user_vector", "item_row", "item_id")
MAX_BUCKETS = 2**24


class _Feature(msgspec.Struct, tag_field="kind", frozen=True, forbid_unknown_fields=True):
    name: str

    @property
    def kind(self) -> str:
        return type(self).__struct_config__.tag

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source the feature reads, prefixed (lookup's field as ``request.<field>``)."""
        return ()

    def _where(self) -> str:
        return f"feature {self.name!r} ({self.kind})"

    def _check_name(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"{self.kind} feature: name must be a non-empty str, got {self.name!r}")

    def _source(self, source: object, what: str = "source") -> str:
        if not isinstance(source, str):
            raise TypeError(f"{self._where()}: {what} must be a str, got {type(source).__name__}")
        if source.startswith(ITEM) and len(source) > len(ITEM):
            return source
        if source.startswith(REQUEST) and len(source) > len(REQUEST):
            field = source[len(REQUEST):]
            if field in RESERVED_FIELDS:
                raise ValueError(f"{self._where()}: {source!r} is reserved (user_vector is read by "
                                 "dot features; item_row and item_id name the item in offline tables)")
            return source
        raise ValueError(f"{self._where()}: {what} {source!r} must be 'item.<column>' or "
                         "'request.<field>'")

    def _number(self, value: object, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{self._where()}: {what} must be a number, got {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{self._where()}: {what} must be finite, got {value}")
        return value

    def _buckets(self, buckets: object) -> int:
        if isinstance(buckets, bool) or not isinstance(buckets, numbers.Integral):
            raise TypeError(f"{self._where()}: buckets must be an int, got {type(buckets).__name__}")
        if not 1 <= buckets <= MAX_BUCKETS:
            raise ValueError(f"{self._where()}: buckets must be in [1, 2**24], got {buckets}")
        return int(buckets)

    def _source_list(self, sources: object, minimum: int, exact: bool) -> tuple[str, ...]:
        if isinstance(sources, str) or not isinstance(sources, (list, tuple)):
            raise TypeError(f"{self._where()}: sources must be a list of str, got {type(sources).__name__}")
        checked = tuple(self._source(s) for s in sources)
        if (exact and len(checked) != minimum) or len(checked) < minimum:
            raise ValueError(f"{self._where()}: expected {'exactly' if exact else 'at least'} "
                             f"{minimum} sources, got {len(checked)}")
        if len(set(checked)) != len(checked):
            raise ValueError(f"{self._where()}: a source is repeated in {list(checked)}")
        return checked


def _set(struct: msgspec.Struct, name: str, value: object) -> None:
    # Frozen structs normalise their own fields once, in __post_init__.
    msgspec.structs.force_setattr(struct, name, value)


class Numeric(_Feature, tag="numeric"):
    """The source's value as float32; missing, null or NaN -> ``default``."""

    source: str
    default: float = 0.0

    def __post_init__(self) -> None:
        self._check_name()
        self._source(self.source)
        _set(self, "default", self._number(self.default, "default"))

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,)


class Bucket(_Feature, tag="bucket"):
    """How many ``boundaries`` are <= the value (strictly increasing, finite);
    missing, null or NaN -> ``default``."""

    source: str
    boundaries: tuple[float, ...]
    default: float = -1.0

    def __post_init__(self) -> None:
        self._check_name()
        self._source(self.source)
        if isinstance(self.boundaries, (str, bytes)) or not hasattr(self.boundaries, "__iter__"):
            raise TypeError(f"{self._where()}: boundaries must be a list of numbers")
        bounds = tuple(self._number(b, "boundaries") for b in self.boundaries)
        if not bounds:
            raise ValueError(f"{self._where()}: boundaries must not be empty")
        if any(not a < b for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"{self._where()}: boundaries must be strictly increasing, got {list(bounds)}")
        _set(self, "boundaries", bounds)
        _set(self, "default", self._number(self.default, "default"))

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,)


class Hashed(_Feature, tag="hashed"):
    """A categorical value (int, uint, bool column; int, str, bool field)
    hashed into [0, buckets); missing hashes as its own fixed category."""

    source: str
    buckets: int

    def __post_init__(self) -> None:
        self._check_name()
        self._source(self.source)
        _set(self, "buckets", self._buckets(self.buckets))

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,)


class Cross(_Feature, tag="cross"):
    """2+ categorical values hashed together, in the given order, into [0, buckets)."""

    sources: tuple[str, ...]  # type: ignore[assignment]  (a field here, a property elsewhere)
    buckets: int

    def __post_init__(self) -> None:
        self._check_name()
        _set(self, "sources", self._source_list(self.sources, 2, exact=False))
        _set(self, "buckets", self._buckets(self.buckets))


class Dot(_Feature, tag="dot"):
    """The request's ``user_vector`` . the item's row of ``item_vectors``
    (float32, one fixed summation order); no user vector -> 0."""

    def __post_init__(self) -> None:
        self._check_name()


class Lookup(_Feature, tag="lookup"):
    """``request[field]`` is a map {key: value}; the feature is the value for
    the item's ``key`` column (``"item.<column>"``, integer ids). A missing
    map, key, null or NaN value -> ``default``."""

    field: str
    key: str
    default: float = 0.0

    def __post_init__(self) -> None:
        self._check_name()
        if not isinstance(self.field, str) or not self.field:
            raise TypeError(f"{self._where()}: field must be a non-empty str (a request field name)")
        if self.field.startswith(REQUEST):
            raise ValueError(f"{self._where()}: field is a request field name without the prefix: "
                             f"{self.field[len(REQUEST):]!r}, not {self.field!r}")
        self._source(REQUEST + self.field, "field")
        if not (isinstance(self.key, str) and self.key.startswith(ITEM)):
            raise ValueError(f"{self._where()}: key must be an item column 'item.<column>', got {self.key!r}")
        self._source(self.key, "key")
        _set(self, "default", self._number(self.default, "default"))

    @property
    def sources(self) -> tuple[str, ...]:
        return (REQUEST + self.field, self.key)


class Match(_Feature, tag="match"):
    """1.0 when both categorical values are present and equal, else 0.0."""

    sources: tuple[str, ...]  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self._check_name()
        _set(self, "sources", self._source_list(self.sources, 2, exact=True))


Feature = Numeric | Bucket | Hashed | Cross | Dot | Lookup | Match
KINDS = {cls.__struct_config__.tag: cls for cls in (Numeric, Bucket, Hashed, Cross, Dot, Lookup, Match)}


class FeatureSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The features, in output column order, and the spec's revision."""

    features: tuple[Feature, ...]
    version: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.features, (str, bytes)) or not isinstance(self.features, (list, tuple)):
            raise TypeError(f"features: expected a list of features, got {type(self.features).__name__}")
        features = tuple(self.features)
        if not features:
            raise ValueError("features: a spec needs at least one feature")
        for i, f in enumerate(features):
            if not isinstance(f, _Feature):
                raise TypeError(f"features[{i}]: expected a feature ({', '.join(KINDS)}), "
                                f"got {type(f).__name__}")
        seen: set[str] = set()
        for f in features:
            if f.name in seen:
                raise ValueError(f"features: duplicate name {f.name!r}")
            seen.add(f.name)
        # A request field is either a map (lookup) or a single value.
        maps = {f.field: f.name for f in features if isinstance(f, Lookup)}
        for f in features:
            if isinstance(f, Lookup):
                continue
            for s in f.sources:
                field = s[len(REQUEST):] if s.startswith(REQUEST) else None
                if field in maps:
                    raise ValueError(f"request field {field!r} is a map for feature {maps[field]!r} "
                                     f"(lookup) and a single value for feature {f.name!r} ({f.kind})")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"version: expected an int >= 1, got {self.version!r}")
        _set(self, "features", features)

    @property
    def names(self) -> list[str]:
        """Output column names, in order."""
        return [f.name for f in self.features]

    @property
    def item_columns(self) -> list[str]:
        """Item table columns the spec reads, in order of first use."""
        return _unique(s[len(ITEM):] for f in self.features for s in f.sources if s.startswith(ITEM))

    @property
    def request_fields(self) -> list[str]:
        """Request fields the spec reads, in order of first use (``user_vector`` not included:
        see ``uses_user_vector``)."""
        return _unique(s[len(REQUEST):] for f in self.features for s in f.sources if s.startswith(REQUEST))

    @property
    def uses_user_vector(self) -> bool:
        """Whether a dot feature reads ``request["user_vector"]`` and the item vectors."""
        return any(isinstance(f, Dot) for f in self.features)

    def to_json(self) -> str:
        return msgspec.json.encode(self).decode()

    @classmethod
    def from_json(cls, data: str | bytes) -> FeatureSpec:
        """Decodes and validates; a bad document raises ``msgspec.ValidationError``
        (a ValueError) naming the path, e.g. ``$.features[3]``."""
        return msgspec.json.decode(data, type=cls)


def _unique(values) -> list[str]:
    return list(dict.fromkeys(values))
