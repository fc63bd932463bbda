#include "ann/segment_build.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "ann/kmeans.hpp"
#include "ann/topk.hpp"
#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "simd/dispatch.hpp"

namespace engine::ann {
namespace {

// Self-queries are easier than real ones (users sit between clusters), so the
// target is set above the 0.95 the caller is promised.
constexpr double kCalibrationRecall = 0.995;
constexpr size_t kCalibrationQueries = 256;
constexpr size_t kCalibrationK = 10;

// The column with the most distinct values: store pages filter on it most
// selectively, so its rows are laid out contiguously.
int32_t choose_cluster_column(const BuildInput& in) {
  int32_t best = -1;
  size_t best_distinct = 1;
  std::vector<int64_t> tmp(in.n);
  for (uint32_t c = 0; c < in.n_columns; ++c) {
    std::copy_n(in.attrs + size_t{c} * in.n, in.n, tmp.begin());
    std::sort(tmp.begin(), tmp.end());
    const size_t distinct = size_t(std::unique(tmp.begin(), tmp.end()) - tmp.begin());
    if (distinct > best_distinct) { best_distinct = distinct; best = int32_t(c); }
  }
  return best;
}

void build_postings(SegmentArrays& a, const std::vector<int64_t>& attrs, size_t n) {
  std::vector<uint64_t> post_col{0};
  std::vector<int64_t> values;
  std::vector<uint64_t> offsets;
  std::vector<uint32_t> rows(size_t{a.n_columns} * n);
  std::vector<std::pair<int64_t, uint32_t>> pairs(n);
  for (uint32_t c = 0; c < a.n_columns; ++c) {
    const int64_t* col = attrs.data() + size_t{c} * n;
    for (size_t i = 0; i < n; ++i) pairs[i] = {col[i], uint32_t(i)};
    std::sort(pairs.begin(), pairs.end());
    for (size_t i = 0; i < n; ++i) {
      if (i == 0 || pairs[i].first != pairs[i - 1].first) {
        values.push_back(pairs[i].first);
        offsets.push_back(i);
      }
      rows[size_t{c} * n + i] = pairs[i].second;
    }
    offsets.push_back(n);
    post_col.push_back(values.size());
  }
  a.post_col = Array<uint64_t>(std::move(post_col));
  a.post_values = Array<int64_t>(std::move(values));
  a.post_offsets = Array<uint64_t>(std::move(offsets));
  a.post_rows = Array<uint32_t>(std::move(rows));
}

// Smallest nprobe at which the true top-10 of sampled rows (themselves
// excluded) fall in the probed lists for 99.5 % of neighbours. Read off list
// ranks directly, so one exact pass over the rows answers every nprobe.
uint32_t calibrate_nprobe(const SegmentArrays& a, const float* centroids, const float* centroid_sqnorms,
                          size_t nlist, const std::vector<uint32_t>& row_list, uint64_t seed, int threads) {
  const auto& k = simd::active();
  const size_t n = a.rows(), dim = a.dim;
  const size_t nq = std::min(kCalibrationQueries, n / 4);
  if (nq == 0) return uint32_t(nlist);
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
  // Zero vectors (items stored before they have an embedding) score 0 with
  // every row: their "neighbours" are arbitrary and would ask for every list.
  std::vector<uint32_t> queries(nq);
  for (auto& q : queries) {
    q = uint32_t(rng() % n);
    for (int tries = 0; tries < 64 && a.sqnorms[q] == 0.0f; ++tries) q = uint32_t(rng() % n);
  }

  // Exact neighbours of all sample rows in one blocked pass over the rows
  // (the matrix kernel, as batched exact search does).
  std::vector<float> qs(nq * dim);
  for (size_t qi = 0; qi < nq; ++qi)
    std::copy_n(a.vectors.data() + size_t{queries[qi]} * dim, dim, qs.data() + qi * dim);
  const size_t kk = std::min(kCalibrationK, n - 1);
  std::vector<TopK> tops(nq, TopK(kk));
  parallel_for(nq, threads, [&](size_t q0, size_t q1) {
    constexpr size_t kRows = 512;
    std::vector<float> scores((q1 - q0) * kRows);
    for (size_t r0 = 0; r0 < n; r0 += kRows) {
      const size_t m = std::min(kRows, n - r0);
      k.dot_f32_multi(qs.data() + q0 * dim, q1 - q0, a.vectors.data() + r0 * dim, m, dim, scores.data());
      for (size_t qi = q0; qi < q1; ++qi)
        for (size_t j = 0; j < m; ++j) {
          const size_t r = r0 + j;
          if (r == queries[qi]) continue;  // a row is not its own neighbour
          float sc = scores[(qi - q0) * m + j];
          if (a.metric == Metric::l2) sc = 2 * sc - a.sqnorms[r];
          tops[qi].push(sc, 0, uint32_t(r));
        }
    }
  });
  std::vector<uint32_t> needed(nq * kCalibrationK, uint32_t(nlist));
  parallel_for(nq, threads, [&](size_t q0, size_t q1) {
    std::vector<float> cscores(nlist);
    std::vector<uint32_t> rank_of_list(nlist), lists(nlist);
    for (size_t qi = q0; qi < q1; ++qi) {
      k.dot_f32(qs.data() + qi * dim, centroids, nullptr, nlist, dim, cscores.data());
      if (a.metric == Metric::l2)
        for (size_t c = 0; c < nlist; ++c) cscores[c] = 2 * cscores[c] - centroid_sqnorms[c];
      std::iota(lists.begin(), lists.end(), 0u);
      std::sort(lists.begin(), lists.end(),
                [&](uint32_t x, uint32_t y) { return cscores[x] > cscores[y]; });
      for (size_t r = 0; r < nlist; ++r) rank_of_list[lists[r]] = uint32_t(r);
      const auto hits = tops[qi].sorted();
      for (size_t j = 0; j < hits.size(); ++j)
        needed[qi * kCalibrationK + j] = rank_of_list[row_list[hits[j].row]] + 1;
    }
  });
  std::sort(needed.begin(), needed.end());
  const size_t at = size_t(std::ceil(kCalibrationRecall * double(needed.size()))) - 1;
  return std::clamp<uint32_t>(needed[std::min(at, needed.size() - 1)], 1, uint32_t(nlist));
}

// A trained IVF partition: centroids, each row's list, and the lists a
// search must probe by default.
struct Partition {
  std::vector<float> centroids, sqnorms;
  std::vector<uint32_t> row_list;
  uint32_t nprobe = 0;
};

Partition train_partition(const SegmentArrays& a, const BuildInput& in, size_t nlist,
                          bool by_inner_product) {
  const size_t n = a.rows(), dim = a.dim;
  Partition p;
  p.centroids = train_centroids(a.vectors.data(), n, dim, nlist, by_inner_product, 10, in.seed,
                                in.threads);
  p.sqnorms.resize(nlist);
  for (size_t c = 0; c < nlist; ++c) {
    double s = 0;
    for (size_t d = 0; d < dim; ++d) s += double(p.centroids[c * dim + d]) * p.centroids[c * dim + d];
    p.sqnorms[c] = float(s);
  }
  p.row_list.resize(n);
  assign_to_centroids(a.vectors.data(), n, dim, p.centroids.data(), p.sqnorms.data(), nlist,
                      by_inner_product, p.row_list.data(), in.threads);
  p.nprobe = calibrate_nprobe(a, p.centroids.data(), p.sqnorms.data(), nlist, p.row_list, in.seed,
                              in.threads);
  return p;
}

void build_ivf(SegmentArrays& a, const BuildInput& in, const std::vector<uint32_t>& order) {
  const size_t n = a.rows(), dim = a.dim;
  const auto& k = simd::active();
  const bool by_inner_product = a.metric != Metric::l2;
  std::vector<uint32_t> row_list(n, UINT32_MAX);
  if (in.centroid_source) {
    const SegmentArrays& src = in.centroid_source->arrays();
    a.nlist = src.nlist;
    a.centroids = src.centroids;  // shared, not copied
    a.centroid_sqnorms = src.centroid_sqnorms;
    a.default_nprobe = src.default_nprobe;
    // Rows keep a list they already had (a merge); the rest are assigned.
    if (in.known_lists)
      for (size_t r = 0; r < n; ++r) row_list[r] = in.known_lists[order[r]];
    std::vector<uint32_t> todo;
    for (size_t r = 0; r < n; ++r)
      if (row_list[r] == UINT32_MAX) todo.push_back(uint32_t(r));
    if (!todo.empty()) {
      std::vector<float> x(todo.size() * dim);
      for (size_t i = 0; i < todo.size(); ++i)
        std::copy_n(a.vectors.data() + size_t{todo[i]} * dim, dim, x.data() + i * dim);
      std::vector<uint32_t> got(todo.size());
      assign_to_centroids(x.data(), todo.size(), dim, a.centroids.data(), a.centroid_sqnorms.data(),
                          a.nlist, by_inner_product, got.data(), in.threads);
      for (size_t i = 0; i < todo.size(); ++i) row_list[todo[i]] = got[i];
    }
  } else {
    size_t nlist = in.nlist ? in.nlist : size_t(std::lround(4.0 * std::sqrt(double(n))));
    nlist = std::clamp<size_t>(nlist, 1, n);
    // Mean centroids for ip / cos too (kmeans.hpp says why). Unit centroids
    // were also trained and kept when they needed fewer lists, as a guard:
    // they never did (default lists, means against unit: 15 / 37 on the ANN
    // benchmark, 98 / 353 on the pipeline world, 43 / 43 on the quickstart's),
    // so the build no longer pays for them.
    Partition best = train_partition(a, in, nlist, by_inner_product);
    a.nlist = uint32_t(nlist);
    a.centroids = Array<float>(std::move(best.centroids));
    a.centroid_sqnorms = Array<float>(std::move(best.sqnorms));
    a.default_nprobe = best.nprobe;
    row_list = std::move(best.row_list);
  }

  std::vector<uint64_t> offsets(size_t{a.nlist} + 1, 0);
  for (uint32_t l : row_list) ++offsets[size_t{l} + 1];
  for (size_t l = 0; l < a.nlist; ++l) offsets[l + 1] += offsets[l];
  std::vector<uint32_t> list_rows(n);
  {
    std::vector<uint64_t> cursor(offsets.begin(), offsets.end() - 1);
    for (size_t r = 0; r < n; ++r) list_rows[cursor[row_list[r]]++] = uint32_t(r);
  }

  const size_t bytes = storage_bytes(a.storage);
  std::vector<uint8_t> codes(n * dim * bytes);
  // i8: one scale per dimension (its largest magnitude / 127), folded into
  // the query at search time, so a row is exactly its 64 code bytes.
  std::vector<float> scales(a.storage == Storage::i8 ? dim : 0);
  std::vector<float> inv(scales.size());
  if (a.storage == Storage::i8) {
    for (size_t i = 0; i < n * dim; ++i)
      scales[i % dim] = std::max(scales[i % dim], std::fabs(a.vectors[i]));
    for (size_t d = 0; d < dim; ++d) {
      scales[d] /= 127.0f;
      inv[d] = scales[d] > 0 ? 1.0f / scales[d] : 0.0f;
    }
  }
  parallel_for(n, in.threads, [&](size_t p0, size_t p1) {
    for (size_t p = p0; p < p1; ++p) {
      const float* v = a.vectors.data() + size_t{list_rows[p]} * dim;
      uint8_t* dst = codes.data() + p * dim * bytes;
      if (a.storage == Storage::f32) {
        std::copy_n(reinterpret_cast<const uint8_t*>(v), dim * 4, dst);
      } else if (a.storage == Storage::f16) {
        k.f32_to_f16(v, reinterpret_cast<uint16_t*>(dst), dim);
      } else {
        auto* code = reinterpret_cast<int8_t*>(dst);
        for (size_t d = 0; d < dim; ++d)
          code[d] = int8_t(std::clamp<long>(std::lrint(v[d] * inv[d]), -127, 127));
      }
    }
  });
  std::vector<int64_t> list_attrs(size_t{a.n_columns} * n);
  for (size_t c = 0; c < a.n_columns; ++c)
    for (size_t p = 0; p < n; ++p) list_attrs[c * n + p] = a.attrs[c * n + list_rows[p]];

  a.list_offsets = Array<uint64_t>(std::move(offsets));
  a.list_rows = Array<uint32_t>(std::move(list_rows));
  a.codes = Array<uint8_t>(std::move(codes));
  a.code_scales = Array<float>(std::move(scales));
  a.list_attrs = Array<int64_t>(std::move(list_attrs));
}

}  // namespace

std::shared_ptr<const Segment> build_segment(const BuildInput& in) {
  const size_t n = in.n, dim = in.dim;
  if (n == 0) throw ValueError("ids: no rows to build from");
  if (n >= (size_t{1} << 32)) throw ValueError("ids: a segment holds fewer than 2^32 rows");
  SegmentArrays a;
  a.dim = in.dim;
  a.metric = in.metric;
  a.storage = in.storage;
  a.n_columns = in.n_columns;
  a.cluster_column = choose_cluster_column(in);

  // Row order: by cluster value, then input order.
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  if (a.cluster_column >= 0) {
    const int64_t* key = in.attrs + size_t(a.cluster_column) * n;
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t x, uint32_t y) { return key[x] < key[y]; });
  }

  std::vector<uint64_t> ids(n);
  std::vector<float> vectors(n * dim), sqnorms(n);
  std::vector<int64_t> attrs(size_t{in.n_columns} * n);
  for (size_t r = 0; r < n; ++r) {
    const size_t src = order[r];
    ids[r] = in.ids[src];
    std::copy_n(in.vectors + src * dim, dim, vectors.data() + r * dim);
    double s = 0;
    for (size_t d = 0; d < dim; ++d) s += double(vectors[r * dim + d]) * vectors[r * dim + d];
    sqnorms[r] = float(s);
    for (size_t c = 0; c < in.n_columns; ++c) attrs[c * n + r] = in.attrs[c * n + src];
  }

  std::vector<uint32_t> by_id(n);
  std::iota(by_id.begin(), by_id.end(), 0u);
  std::sort(by_id.begin(), by_id.end(), [&](uint32_t x, uint32_t y) { return ids[x] < ids[y]; });
  std::vector<uint64_t> sorted_ids(n);
  for (size_t i = 0; i < n; ++i) {
    sorted_ids[i] = ids[by_id[i]];
    if (i && sorted_ids[i] == sorted_ids[i - 1])
      throw ValueError("ids: duplicate id " + std::to_string(sorted_ids[i]));
    if (sorted_ids[i] >= (uint64_t{1} << 63))
      throw ValueError("ids: id " + std::to_string(sorted_ids[i]) + " is above 2^63 - 1");
  }

  build_postings(a, attrs, n);
  a.ids = Array<uint64_t>(std::move(ids));
  a.vectors = Array<float>(std::move(vectors));
  a.sqnorms = Array<float>(std::move(sqnorms));
  a.attrs = Array<int64_t>(std::move(attrs));
  a.sorted_ids = Array<uint64_t>(std::move(sorted_ids));
  a.sorted_rows = Array<uint32_t>(std::move(by_id));
  if (n >= in.min_ivf_rows || in.centroid_source) build_ivf(a, in, order);
  return Segment::from_arrays(std::move(a));
}

}  // namespace engine::ann
