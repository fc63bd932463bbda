"""The end-to-end ranking workload: a shopping world, a ~60-feature spec, two trained heads, a bundle.

``prepare(params)`` generates the world (``engine.datasets.make_world``,
deterministic, a few seconds) and finds under
``bench/results/cache/pipeline/<key>/`` (``key``: a hash of the parameters,
the feature spec and ``FORMAT``) or else builds:

- ``p_click.txt`` / ``p_order.txt``: two LightGBM heads (binary, ``leaves``
  leaves, ``trees`` trees) trained on rows assembled offline
  (``FeatureAssembler.assemble_offline``) from sampled (request, candidate)
  pairs: the candidates a model-less bundle retrieves for training requests,
  labelled by Bernoulli draws from the world's true P(click | examined) and
  P(order | click);
- ``holdout.npz``: held-out feature rows (float32) and labels, on which the
  compiled forest is checked against LightGBM;
- ``bundle/``: the serving bundle (items, vectors, engine index, candidate
  lists, the compiled forest, users), rebuilt on every run so that the
  engine measured is the one installed;
- ``usearch-f32.usearch``: the glued stack's HNSW index (usearch defaults,
  built with 2 threads: the slowest one-time step at 1M items);
- ``meta.json``: what was built, how long each step took, training stats.

Both runtimes read the same item table (``items_table``), user table
(``users_table``), requests (``to_rank_request``), surfaces and models.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
CACHE_DIR = RESULTS_DIR / "cache" / "pipeline"
FORMAT = 1  # bump when the world, the tables, the spec or the training change

K = 20
ANN, POPULAR, NEW = 400, 80, 20  # candidates per source: ~500 per request
TRAIN_THREADS = 1  # LightGBM: two OpenMP threads spin-wait on this shared 2-core VM (bench/trees)
BUILD_THREADS = 2  # engine index build, offline assembly, usearch build
DEVICES = ("ios", "android", "web")
PRICE_BANDS = (5, 10, 20, 35, 50, 75, 100, 150, 250, 500)
N_COUNTRIES = 30
BRANDS_PER_MERCHANT = 8


@dataclass(frozen=True)
class Params:
    """Everything that shapes the world, the models and the measurement."""

    items: int = 1_000_000
    users: int = 100_000
    dim: int = 64
    merchants: int = 5_000
    categories: int = 200
    seed: int = 0
    train_requests: int = 1_500
    train_rows_per_request: int = 200  # a uniform sample of each request's ~500 candidates
    trees: int = 500
    leaves: int = 63
    # The measurement (not part of the cache key).
    requests: int = 2_000
    warmup: int = 200
    check_requests: int = 100

    def key(self, spec_json: str) -> str:
        built = {k: v for k, v in asdict(self).items() if k not in ("requests", "warmup", "check_requests")}
        text = json.dumps({"format": FORMAT, "params": built, "spec": spec_json,
                           "sources": [ANN, POPULAR, NEW, K]}, sort_keys=True)
        return (f"i{self.items}-t{self.trees}-"
                + hashlib.sha256(text.encode()).hexdigest()[:12])


FULL = Params()
QUICK = replace(FULL, items=100_000, users=20_000, merchants=1_000, categories=100, train_requests=600,
                trees=100, requests=200, warmup=50, check_requests=50)


# -- tables -------------------------------------------------------------------
def items_table(world) -> pa.Table:
    """The world's items plus the columns a real catalogue feature table carries
    (derived aggregates and a few attributes that do not move the ground truth)."""
    from engine.quickstart.spec import items_table as with_boost

    items = with_boost(world)  # + merchant_boost (the quickstart's promoted merchants)
    rng = np.random.default_rng([world.seed, 0xBE7C])
    n = items.num_rows
    price = items.column("price").to_numpy().astype(np.float64)
    category = items.column("category_id").to_numpy()
    merchant = items.column("merchant_id").to_numpy()
    rating = items.column("rating").to_numpy().astype(np.float64)
    reviews = items.column("review_count").to_numpy()
    age = items.column("age_days").to_numpy().astype(np.float64)

    order = np.lexsort((price, category))  # per-category medians without pandas
    starts = np.searchsorted(category[order], np.arange(world.categories + 1))
    median = np.array([np.median(price[order[a:b]]) if b > a else np.nan
                       for a, b in zip(starts[:-1], starts[1:])])
    merchant_items = np.bincount(merchant, minlength=world.merchants)
    merchant_rating = np.bincount(merchant, weights=rating, minlength=world.merchants) / np.maximum(merchant_items, 1)
    category_items = np.bincount(category, minlength=world.categories)
    popularity = np.empty(n)
    popularity[np.argsort(reviews, kind="stable")] = np.arange(n) / max(n - 1, 1)
    discount = rng.uniform(5.0, 50.0, n).astype(np.float32)
    f32 = pa.float32()
    extra = {
        "log_price": pa.array(np.log(price), f32),
        "price_rel_category": pa.array(price / median[category], f32),
        "reviews_per_day": pa.array(reviews / np.maximum(age, 1.0), f32),
        "merchant_items": pa.array(merchant_items[merchant], pa.int64()),
        "category_items": pa.array(category_items[category], pa.int64()),
        "merchant_rating": pa.array(merchant_rating[merchant], f32),
        "category_price_median": pa.array(median[category], f32),
        "popularity_pct": pa.array(popularity, f32),
        "brand_id": pa.array(merchant * BRANDS_PER_MERCHANT + rng.integers(0, BRANDS_PER_MERCHANT, n), pa.int64()),
        "price_band": pa.array(np.searchsorted(PRICE_BANDS, price, side="right"), pa.int64()),
        "shipping_days": pa.array(rng.integers(1, 11, n), pa.int64()),
        "image_count": pa.array(rng.poisson(4.0, n), pa.int64()),
        # 70 % of items have no discount: a null, which features read as missing.
        "discount_pct": pa.array(discount, f32, mask=rng.random(n) >= 0.3),
        "free_shipping": pa.array(rng.random(n) < 0.4, pa.bool_()),
        "weight_kg": pa.array(np.exp(rng.normal(0.0, 1.0, n)), f32),
        "return_rate": pa.array(rng.beta(2.0, 30.0, n), f32),
    }
    for name, column in extra.items():
        items = items.append_column(name, column)
    return items


def users_table(world) -> pa.Table:
    """user_id and the user attributes the spec reads as request fields."""
    rng = np.random.default_rng([world.seed, 0x05E5])
    n = world.n_users
    country = np.minimum(rng.zipf(1.6, n) - 1, N_COUNTRIES - 1)
    return pa.table({
        "user_id": world.users.column("user_id"),
        "segment": world.users.column("segment"),
        "country": pa.array(country, pa.int64()),
        "tenure_days": pa.array(rng.exponential(400.0, n), pa.float32()),
        "user_has_vector": world.users.column("has_vector"),
    })


# -- the feature spec and the surfaces ------------------------------------------
def feature_spec():
    """60 features: 27 numeric (22 item, 5 request), 7 bucketised, 8 hashed, 10 crosses, 1 dot, 3 lookups, 4 matches
    (the quickstart's 21, extended)."""
    from engine.features import Bucket, Cross, Dot, FeatureSpec, Hashed, Lookup, Match, Numeric

    numeric_items = ["price", "margin", "rating", "review_count", "age_days", "in_stock", "has_vector",
                     "merchant_boost", "log_price", "price_rel_category", "reviews_per_day", "merchant_items",
                     "category_items", "merchant_rating", "category_price_median", "popularity_pct",
                     "shipping_days", "image_count", "free_shipping", "weight_kg", "return_rate"]
    return FeatureSpec(features=[
        *(Numeric(c, f"item.{c}") for c in numeric_items),
        Numeric("discount_pct", "item.discount_pct", default=-1.0),
        Numeric("hour", "request.hour", default=-1.0),
        Numeric("weekday", "request.weekday", default=-1.0),
        Numeric("n_recent", "request.n_recent"),
        Numeric("tenure_days", "request.tenure_days", default=-1.0),
        Numeric("user_has_vector", "request.user_has_vector"),
        Bucket("price_bucket", "item.price", list(PRICE_BANDS)),
        Bucket("rating_bucket", "item.rating", [3.0, 3.5, 4.0, 4.3, 4.6, 4.8]),
        Bucket("age_bucket", "item.age_days", [2, 7, 30, 90, 180, 365, 730]),
        Bucket("reviews_bucket", "item.review_count", [0, 1, 5, 20, 100, 500, 2000]),
        Bucket("margin_bucket", "item.margin", [0.1, 0.15, 0.2, 0.25, 0.3, 0.4]),
        Bucket("price_rel_bucket", "item.price_rel_category", [0.5, 0.75, 0.9, 1.1, 1.33, 2.0]),
        Bucket("hour_bucket", "request.hour", [6, 10, 14, 18, 22]),
        Hashed("category", "item.category_id", 1024),
        Hashed("merchant", "item.merchant_id", 4096),
        Hashed("brand", "item.brand_id", 8192),
        Hashed("device", "request.device", 16),
        Hashed("segment", "request.segment", 16),
        Hashed("country", "request.country", 64),
        Hashed("query_category", "request.query_category", 1024),
        Hashed("store", "request.merchant_id", 4096),
        Cross("segment_x_category", ["request.segment", "item.category_id"], 4096),
        Cross("segment_x_merchant", ["request.segment", "item.merchant_id"], 8192),
        Cross("segment_x_price_band", ["request.segment", "item.price_band"], 256),
        Cross("segment_x_brand", ["request.segment", "item.brand_id"], 16384),
        Cross("device_x_category", ["request.device", "item.category_id"], 4096),
        Cross("device_x_price_band", ["request.device", "item.price_band"], 256),
        Cross("hour_band_x_category", ["request.hour_band", "item.category_id"], 4096),
        Cross("hour_band_x_price_band", ["request.hour_band", "item.price_band"], 256),
        Cross("country_x_category", ["request.country", "item.category_id"], 8192),
        Cross("segment_x_device_x_category", ["request.segment", "request.device", "item.category_id"], 8192),
        Dot("user_item_dot"),
        Lookup("category_clicks", "category_clicks", "item.category_id"),
        Lookup("merchant_clicks", "merchant_clicks", "item.merchant_id"),
        Lookup("brand_clicks", "brand_clicks", "item.brand_id"),
        Match("query_category_match", ["request.query_category", "item.category_id"]),
        Match("store_match", ["request.merchant_id", "item.merchant_id"]),
        Match("top_category_match", ["request.top_category", "item.category_id"]),
        Match("last_merchant_match", ["request.last_merchant", "item.merchant_id"]),
    ])


def value_model():
    """The quickstart's blend: expected clicks and orders, a little GMV and merchant promotion."""
    from engine.ranking import ValueModel, ValueTerm

    return ValueModel(terms=[
        ValueTerm("click", 1.0, ["p_click"]),
        ValueTerm("order", 1.0, ["p_click", "p_order"]),
        ValueTerm("gmv", 0.0005, ["p_click", "p_order", "price"]),
        ValueTerm("merchant", 0.002, ["merchant_boost"]),
    ])


# The home feed's IVF lists to probe (its ``ann_ef``), set at equal recall with
# the glued stack: the index's default (175 lists, calibrated for recall@10
# of 0.995) gives recall@400 0.970 of the exact in-stock top 400, usearch's
# 667 over-fetched neighbours post-filtered 0.890 (p5 0.705); 60 lists give
# 0.925 (p5 0.729) in 55 % of the time, and the ranking loses nothing (the
# world's true relevance of the top 20 7.792 vs 7.789, top-20 overlap 0.992;
# 800 requests). check_retrieval() measures both recalls on every run.
# Searches and store pages keep the default: their filters mostly take
# exact scans, which ef does not change. (The model-less bundle that finds the
# training candidates keeps the default, as the cached heads were trained so.)
HOME_ANN_EF = 60


def surfaces(*, trained: bool) -> dict:
    """Every surface: ANN 400 + popular 80 + new 20 candidates, top 20, greedy by value
    (no caps, no exploration: the glued stack's ``argpartition`` does the same)."""
    import msgspec

    from engine.ranking import RerankPolicy, SurfaceSettings, ValueModel, ValueTerm

    value = value_model() if trained else ValueModel(terms=[ValueTerm("retrieval", 1.0, ["retrieval_score"])])
    settings = SurfaceSettings(value_model=value, rerank=RerankPolicy(), k=K, ann_candidates=ANN,
                               popular_candidates=POPULAR, new_item_candidates=NEW)
    home = msgspec.structs.replace(settings, ann_ef=HOME_ANN_EF) if trained else settings
    return {"home": home, "search": settings, "store": settings}


# The two-phase variant: candidates the first phase keeps for the heads. Two
# whole blocks of the forest walk (64 rows each): 150 took 84 us more per
# request for its last 22 rows, with the same quality (top-20 overlap with
# one phase 0.993 at 150, 0.990 at 128; true relevance 7.79 / 7.80 / 7.79
# one-phase).
RERANK_COUNT = 128
FIRST_PHASE_TREES = 50  # ... chosen by the raw score of p_click's first trees


def two_phase_surfaces() -> dict:
    """The same surfaces with a first phase (p_click's first FIRST_PHASE_TREES trees)
    keeping RERANK_COUNT candidates for the full heads and the value model (Vespa's
    first / second phase)."""
    import msgspec

    from engine.ranking import ValueModel, ValueTerm

    first = ValueModel(terms=[ValueTerm("click", 1.0, [f"p_click[:{FIRST_PHASE_TREES}]"])])
    return {name: msgspec.structs.replace(s, first_phase=first, rerank_count=RERANK_COUNT)
            for name, s in surfaces(trained=True).items()}


# -- requests -------------------------------------------------------------------
@dataclass
class ItemKeys:
    """Item columns the host service reads to build a request's context from its recent items."""

    merchant: np.ndarray
    category: np.ndarray
    brand: np.ndarray

    @classmethod
    def of(cls, items: pa.Table) -> "ItemKeys":
        return cls(*(items.column(c).to_numpy() for c in ("merchant_id", "category_id", "brand_id")))


def _counts(keys: np.ndarray) -> dict[int, float]:
    values, counts = np.unique(keys, return_counts=True)
    return dict(zip(values.tolist(), counts.astype(float).tolist()))


def request_context(world, r: dict, keys: ItemKeys) -> dict:
    """The context fields the spec reads, as a host service would send them:
    the world's device / hour / query category / store, plus fields derived
    from the shopper's recent items (click counts per category, merchant and
    brand; the top category; the merchant of the latest item)."""
    recent = world.item_rows(r["recent_item_ids"])
    ctx = r["context"]
    hour = ctx.get("hour")
    return {
        "device": ctx.get("device"), "hour": hour, "hour_band": None if hour is None else hour // 4,
        "weekday": zlib.crc32(r["request_id"].encode()) % 7,
        "query_category": ctx.get("query_category"), "merchant_id": ctx.get("merchant_id"),
        "n_recent": len(recent),
        "top_category": (max(r["category_clicks"].items(), key=lambda kv: (kv[1], -kv[0]))[0]
                         if r["category_clicks"] else None),
        "last_merchant": int(keys.merchant[recent[0]]) if len(recent) else None,
        "category_clicks": r["category_clicks"],
        "merchant_clicks": _counts(keys.merchant[recent]),
        "brand_clicks": _counts(keys.brand[recent]),
    }


def to_rank_request(world, r: dict, keys: ItemKeys, k: int | None = None):
    """A world request dict -> RankRequest (explore off, seeded), the input of both runtimes."""
    from engine.ranking import RankRequest

    return RankRequest(surface=r["surface"], user_id=r["user_id"], filters=r["filters"],
                       context=request_context(world, r, keys), recent_item_ids=r["recent_item_ids"].tolist(),
                       request_id=r["request_id"], explore=False, k=k,
                       seed=zlib.crc32(r["request_id"].encode()))


def user_vector(world, request) -> np.ndarray | None:
    """The vector the engine uses for a request without one: the user table's (when not all
    zero), else the normalised sum of the recent items' vectors, else None (cold start)."""
    rows = world.user_rows([request.user_id]) if request.user_id is not None else []
    if len(rows):
        v = world.user_vectors[rows[0]]
        if v.any():
            return v
    if request.recent_item_ids:
        v = world.item_vectors[world.item_rows(request.recent_item_ids)].sum(axis=0)
        norm = float(np.linalg.norm(v))
        if norm > 0:
            return (v / norm).astype(np.float32)
    return None


# -- preparation ----------------------------------------------------------------
@dataclass
class Prepared:
    params: Params
    world: object
    items: pa.Table
    users: pa.Table
    spec: object
    folder: Path
    bundle: Path
    models: dict[str, Path]
    usearch_path: Path
    meta: dict = field(default_factory=dict)
    cached: bool = False


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_world(p: Params):
    from engine.datasets import make_world as generate

    return generate(n_items=p.items, n_users=p.users, dim=p.dim, n_merchants=p.merchants,
                    n_categories=p.categories, seed=p.seed)


def prepare(p: Params, log=_log, cache_dir: Path = CACHE_DIR) -> Prepared:
    """The world and its tables (generated), the models, bundle and usearch index (cached
    under ``cache_dir``)."""
    t0 = time.perf_counter()
    world = make_world(p)
    items, users = items_table(world), users_table(world)
    spec = feature_spec()
    log(f"world: {p.items:,} items, {p.users:,} users, dim {p.dim} ({time.perf_counter() - t0:.0f} s)")
    folder = Path(cache_dir) / p.key(spec.to_json())
    out = Prepared(p, world, items, users, spec, folder, folder / "bundle",
                   {h: folder / f"{h}.txt" for h in ("p_click", "p_order")}, folder / "usearch-f32.usearch")
    common = dict(items=items, item_vectors=world.item_vectors, feature_spec=spec, users=users,
                  user_vectors=world.user_vectors, popularity="review_count", threads=BUILD_THREADS,
                  overwrite=True)
    meta_path = folder / "meta.json"
    if meta_path.exists():
        out.meta, out.cached = json.loads(meta_path.read_text()), True
        log(f"models and usearch index from {folder}/")
        _build_serving_bundle(p, out, common, out.meta, log)
        return out
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted build
    folder.mkdir(parents=True)
    meta: dict = {"params": asdict(p), "format": FORMAT, "steps_s": {}}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        X, click, order, meta["training"] = _training_rows(p, world, items, spec, common, tmp, meta, log)
    _train(p, spec, X, click, order, out, meta, log)
    _build_serving_bundle(p, out, common, meta, log)
    _build_usearch(world, out.usearch_path, meta, log)
    meta_path.write_text(json.dumps(meta, indent=1))
    out.meta = meta
    return out


def _build_serving_bundle(p: Params, out: Prepared, common: dict, meta: dict, log) -> None:
    """The engine's bundle, built by the engine being measured on every run (~20 s at 1M
    items): a cached one would keep an index from whatever code built it first."""
    from engine.bundle import build_bundle

    t = time.perf_counter()
    build_bundle(out.bundle, surfaces=surfaces(trained=True),
                 models={h: os.fspath(path) for h, path in out.models.items()},
                 model_versions={h: f"bench-{p.trees}t" for h in out.models}, **common)
    meta["steps_s"]["bundle"] = time.perf_counter() - t
    log(f"serving bundle built in {meta['steps_s']['bundle']:.0f} s")


def _training_rows(p: Params, world, items, spec, common: dict, tmp: str, meta: dict, log):
    """Feature rows (assembled offline) and Bernoulli labels for sampled (request, candidate) pairs."""
    from engine.bundle import build_bundle
    from engine.features import FeatureAssembler
    from engine.ranking import Ranker

    t = time.perf_counter()
    bundle = build_bundle(os.path.join(tmp, "candidates"), surfaces=surfaces(trained=False), **common)
    meta["steps_s"]["candidate_bundle"] = time.perf_counter() - t
    log(f"candidate bundle (no models) built in {meta['steps_s']['candidate_bundle']:.0f} s")

    t = time.perf_counter()
    keys = ItemKeys.of(items)
    raw = world.sample_requests(p.train_requests, seed=p.seed + 101)
    # k above the candidate count: the response lists every candidate.
    requests = [to_rank_request(world, r, keys, k=10 * (ANN + POPULAR + NEW)) for r in raw]
    with Ranker.load(bundle) as ranker:
        responses = ranker.rank_batch(requests, threads=BUILD_THREADS)
    rng = np.random.default_rng([p.seed, 0x7A1])
    owner, rows = [], []
    for j, resp in enumerate(responses):
        cand = world.item_rows(resp.item_ids)
        take = rng.choice(len(cand), size=min(len(cand), p.train_rows_per_request), replace=False)
        rows.append(np.sort(cand[take]))
        owner.append(np.full(len(take), j, np.int64))
    owner, rows = np.concatenate(owner), np.concatenate(rows)

    # One row per request (its fields), then taken per (request, candidate) pair.
    users_by_row = {c: common["users"].column(c).to_numpy(zero_copy_only=False)
                    for c in ("segment", "country", "tenure_days", "user_has_vector")}
    user_rows = np.array([r["user_row"] for r in raw], np.int64)
    columns: dict[str, pa.Array] = {c: pa.array(v[user_rows]) for c, v in users_by_row.items()}
    fields = [f for f in spec.request_fields if f not in columns]
    for f in fields:
        values = [rq.context.get(f) for rq in requests]
        if f.endswith("_clicks"):
            columns[f] = pa.array([list(v.items()) for v in values], pa.map_(pa.int64(), pa.float64()))
        else:
            columns[f] = pa.array(values)
    vectors = [user_vector(world, rq) for rq in requests]
    flat = np.stack([v if v is not None else np.zeros(p.dim, np.float32) for v in vectors]).ravel()
    columns["user_vector"] = pa.FixedSizeListArray.from_arrays(
        pa.array(flat, pa.float32()), p.dim, mask=pa.array([v is None for v in vectors]))
    per_request = pa.table(columns)
    table = per_request.take(pa.array(owner)).append_column("item_row", pa.array(rows))
    X = FeatureAssembler(spec, items, world.item_vectors).assemble_offline(table, threads=BUILD_THREADS)

    surface = np.array([r["surface"] for r in raw])[owner]
    query = np.array([r["context"].get("query_category", 0) for r in raw], np.int64)[owner]
    label_rng = np.random.default_rng([p.seed, 0x1AB])
    p_click = world.click_probability(user_rows[owner], rows, surface, query_category=query)
    p_order = world.order_probability(user_rows[owner], rows)
    click = label_rng.random(len(rows)) < p_click
    order = label_rng.random(len(rows)) < p_order  # P(order | click): a label on every row
    meta["steps_s"]["training_rows"] = time.perf_counter() - t
    stats = {"requests": len(raw), "rows": int(len(rows)), "clicks": int(click.sum()), "orders": int(order.sum()),
             "mean_candidates": float(np.mean([len(r.item_ids) for r in responses])),
             "cold_start_share": float(np.mean([r.cold_start for r in responses]))}
    log(f"{stats['rows']:,} training rows from {stats['requests']:,} requests "
        f"({stats['clicks']:,} clicks, {stats['orders']:,} orders) in {meta['steps_s']['training_rows']:.0f} s")
    return X, click, order, stats


LGB_PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 63, "min_data_in_leaf": 50,
              "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1, "verbose": -1}
HOLDOUT_SHARE = 0.1


def _train(p: Params, spec, X, click, order, out: Prepared, meta: dict, log) -> None:
    """Two heads on the first 90 % of the rows (whole requests); the rest is kept for the checks."""
    import lightgbm as lgb

    n_fit = int(len(X) * (1 - HOLDOUT_SHARE))
    names = list(spec.names)
    params = {**LGB_PARAMS, "num_leaves": p.leaves, "num_threads": TRAIN_THREADS, "seed": p.seed}
    auc = {}
    for head, y in (("p_click", click), ("p_order", order)):
        t = time.perf_counter()
        booster = lgb.train(params, lgb.Dataset(X[:n_fit], y[:n_fit].astype(np.float32), feature_name=names),
                            num_boost_round=p.trees)
        tmp = out.models[head].with_suffix(".tmp")
        booster.save_model(os.fspath(tmp))
        os.replace(tmp, out.models[head])
        meta["steps_s"][f"train_{head}"] = time.perf_counter() - t
        auc[head] = _auc(booster.predict(X[n_fit:], num_threads=1), y[n_fit:])
        log(f"trained {head}: {p.trees} trees x {p.leaves} leaves on {n_fit:,} rows in "
            f"{meta['steps_s'][f'train_{head}']:.0f} s (held-out AUC {auc[head]:.3f})")
    meta["holdout_auc"] = auc
    np.savez(out.folder / "holdout.npz", X=X[n_fit:], click=click[n_fit:], order=order[n_fit:])


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    pos = y.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / max(n_pos * n_neg, 1))


def _build_usearch(world, path: Path, meta: dict, log) -> None:
    from usearch.index import Index

    has = world.items.column("has_vector").to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(has).astype(np.uint64)
    index = Index(ndim=world.dim, metric="ip", dtype="f32")  # usearch's default connectivity / expansion
    t = time.perf_counter()
    index.add(rows, np.ascontiguousarray(world.item_vectors[has]), threads=BUILD_THREADS)
    meta["steps_s"]["usearch_build"] = time.perf_counter() - t
    tmp = path.with_suffix(".tmp")
    index.save(os.fspath(tmp))
    os.replace(tmp, path)
    meta["usearch"] = {"rows": int(len(rows)), "connectivity": int(index.connectivity),
                       "expansion_add": int(index.expansion_add), "expansion_search": int(index.expansion_search),
                       "hardware_acceleration": str(index.hardware_acceleration)}
    log(f"usearch HNSW over {len(rows):,} vectors built in {meta['steps_s']['usearch_build']:.0f} s "
        f"({BUILD_THREADS} threads)")


def load_holdout(prep: Prepared) -> dict:
    with np.load(prep.folder / "holdout.npz") as z:
        return {k: z[k] for k in z.files}
