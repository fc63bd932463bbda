#include "ann/index.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ann/search.hpp"
#include "ann/segment_build.hpp"
#include "common/errors.hpp"
#include "common/parallel.hpp"

namespace engine::ann {
namespace {

// cos searches inner product over unit vectors; a zero vector has no direction.
std::vector<float> unit_rows(const float* v, size_t n, size_t dim, const char* what) {
  std::vector<float> out(v, v + n * dim);
  for (size_t i = 0; i < n; ++i) {
    float* r = out.data() + i * dim;
    double s = 0;
    for (size_t d = 0; d < dim; ++d) s += double(r[d]) * r[d];
    if (s == 0)
      throw ValueError(std::string(what) + ": row " + std::to_string(i) +
                       " is the zero vector, which has no cosine similarity");
    const float inv = float(1.0 / std::sqrt(s));
    for (size_t d = 0; d < dim; ++d) r[d] *= inv;
  }
  return out;
}

const SegmentView* ivf_source(const std::vector<SegmentView>& segs) {
  const SegmentView* best = nullptr;
  for (const auto& s : segs)
    if (s.segment->has_ivf() && (!best || s.segment->rows() > best->segment->rows())) best = &s;
  return best;
}

bool same_centroids(const SegmentArrays& x, const SegmentArrays& y) {
  return x.nlist == y.nlist && x.centroids.size() == y.centroids.size() &&
         (x.centroids.data() == y.centroids.data() ||
          std::memcmp(x.centroids.data(), y.centroids.data(), x.centroids.size() * sizeof(float)) == 0);
}

}  // namespace

size_t Snapshot::live() const {
  size_t total = 0;
  for (const auto& s : segments) total += s.live;
  return total;
}

Index::Index(IndexOptions options) : options_(options), current_(std::make_shared<Snapshot>()) {
  if (options_.dim == 0) throw ValueError("dim: must be a positive integer");
  // int8 dot products accumulate dim * 127 * 127 in int32.
  if (options_.dim > 65536) throw ValueError("dim: at most 65536 is supported");
}

std::shared_ptr<const Snapshot> Index::snapshot() const {
  std::lock_guard<std::mutex> lock(current_mutex_);
  return current_;
}

void Index::publish(std::shared_ptr<const Snapshot> next) {
  std::lock_guard<std::mutex> lock(current_mutex_);
  current_ = std::move(next);
}

int Index::column_index(const std::string& name) const {
  auto snap = snapshot();
  auto it = std::find(snap->columns.begin(), snap->columns.end(), name);
  return it == snap->columns.end() ? -1 : int(it - snap->columns.begin());
}

std::shared_ptr<const Segment> Index::merge(const std::vector<SegmentView>& parts, bool retrain,
                                            int threads) const {
  const SegmentView* source = retrain ? nullptr : ivf_source(parts);
  const size_t dim = options_.dim;
  const uint32_t cols = parts.front().segment->arrays().n_columns;
  size_t total = 0;
  for (const auto& p : parts) total += p.live;
  std::vector<uint64_t> ids;
  std::vector<float> vectors;
  std::vector<int64_t> attrs(size_t{cols} * total);
  std::vector<uint32_t> lists;
  ids.reserve(total);
  vectors.reserve(total * dim);
  if (source) lists.reserve(total);
  for (const auto& p : parts) {
    const SegmentArrays& a = p.segment->arrays();
    const bool keep_lists = source && a.nlist && same_centroids(a, source->segment->arrays());
    const std::vector<uint32_t> row_list = keep_lists ? p.segment->row_lists() : std::vector<uint32_t>{};
    for (size_t r = 0; r < a.rows(); ++r) {
      if (p.dead && test_bit(p.dead->data(), r)) continue;
      for (size_t c = 0; c < cols; ++c) attrs[c * total + ids.size()] = a.attrs[c * a.rows() + r];
      ids.push_back(a.ids[r]);
      vectors.insert(vectors.end(), a.vectors.data() + r * dim, a.vectors.data() + (r + 1) * dim);
      if (source) lists.push_back(keep_lists ? row_list[r] : UINT32_MAX);
    }
  }
  BuildInput in;
  in.dim = options_.dim;
  in.metric = options_.metric;
  in.storage = options_.storage;
  in.n = total;
  in.ids = ids.data();
  in.vectors = vectors.data();
  in.n_columns = cols;
  in.attrs = attrs.data();
  in.nlist = options_.nlist;
  in.min_ivf_rows = options_.min_ivf_rows;
  if (source) {
    in.centroid_source = source->segment;
    in.known_lists = lists.data();
  }
  in.threads = threads;
  in.seed = options_.seed;
  return build_segment(in);
}

void Index::add(const uint64_t* ids, size_t n, const float* vectors,
                const std::vector<std::string>& columns, const int64_t* attrs, int threads) {
  if (n == 0) return;
  std::lock_guard<std::mutex> writer(writer_mutex_);
  auto snap = snapshot();
  if (!snap->segments.empty() && columns != snap->columns) {
    std::string have;
    for (const auto& c : snap->columns) have += (have.empty() ? "" : ", ") + c;
    throw ValueError("attributes: the index has columns [" + have +
                     "]; every add must give exactly those");
  }
  for (size_t i = 0; i < n; ++i)
    for (const auto& s : snap->segments) {
      const int64_t r = s.segment->find(ids[i]);
      if (r >= 0 && !(s.dead && test_bit(s.dead->data(), size_t(r))))
        throw ValueError("ids: id " + std::to_string(ids[i]) + " is already in the index");
    }
  std::vector<float> unit;
  if (options_.metric == Metric::cos) {
    unit = unit_rows(vectors, n, options_.dim, "vectors");
    vectors = unit.data();
  }

  BuildInput in;
  in.dim = options_.dim;
  in.metric = options_.metric;
  in.storage = options_.storage;
  in.n = n;
  in.ids = ids;
  in.vectors = vectors;
  in.n_columns = uint32_t(columns.size());
  in.attrs = attrs;
  in.nlist = options_.nlist;
  in.min_ivf_rows = options_.min_ivf_rows;
  if (const SegmentView* src = ivf_source(snap->segments)) in.centroid_source = src->segment;
  in.threads = threads;
  in.seed = options_.seed;

  auto next = std::make_shared<Snapshot>(*snap);
  next->columns = columns;
  next->segments.push_back({build_segment(in), nullptr, nullptr, n});
  // Merge while the newest segment is at least half its predecessor: the
  // segment count stays logarithmic and each row is copied O(log n) times.
  auto& segs = next->segments;
  while (segs.size() >= 2 && 2 * segs.back().live >= segs[segs.size() - 2].live) {
    std::vector<SegmentView> parts(segs.end() - 2, segs.end());
    segs.resize(segs.size() - 2);
    size_t live = parts[0].live + parts[1].live;
    segs.push_back({merge(parts, false, threads), nullptr, nullptr, live});
  }
  publish(std::move(next));
}

size_t Index::remove(const uint64_t* ids, size_t n, bool missing_ok) {
  std::lock_guard<std::mutex> writer(writer_mutex_);
  auto snap = snapshot();
  auto next = std::make_shared<Snapshot>(*snap);
  std::vector<std::shared_ptr<std::vector<uint64_t>>> bits(next->segments.size());
  std::vector<std::shared_ptr<std::vector<uint64_t>>> pos_bits(next->segments.size());
  size_t removed = 0;
  for (size_t i = 0; i < n; ++i) {
    bool found = false;
    for (size_t s = 0; s < next->segments.size() && !found; ++s) {
      SegmentView& v = next->segments[s];
      const int64_t r = v.segment->find(ids[i]);
      if (r < 0) continue;
      const uint64_t* dead = bits[s] ? bits[s]->data() : (v.dead ? v.dead->data() : nullptr);
      if (dead && test_bit(dead, size_t(r))) continue;
      if (!bits[s])
        bits[s] = v.dead ? std::make_shared<std::vector<uint64_t>>(*v.dead)
                         : std::make_shared<std::vector<uint64_t>>((v.segment->rows() + 63) / 64, 0);
      (*bits[s])[size_t(r) >> 6] |= uint64_t{1} << (size_t(r) & 63);
      if (v.segment->has_ivf()) {
        if (!pos_bits[s])
          pos_bits[s] = v.dead_pos ? std::make_shared<std::vector<uint64_t>>(*v.dead_pos)
                                   : std::make_shared<std::vector<uint64_t>>((v.segment->rows() + 63) / 64, 0);
        const uint32_t p = v.segment->position_of(uint32_t(r));
        (*pos_bits[s])[p >> 6] |= uint64_t{1} << (p & 63);
      }
      --v.live;
      ++removed;
      found = true;
    }
    if (!found && !missing_ok)
      throw ValueError("ids: id " + std::to_string(ids[i]) + " is not in the index");
  }
  std::vector<SegmentView> kept;
  for (size_t s = 0; s < next->segments.size(); ++s) {
    SegmentView v = next->segments[s];
    if (bits[s]) v.dead = bits[s];
    if (pos_bits[s]) v.dead_pos = pos_bits[s];
    if (v.live > 0) kept.push_back(std::move(v));
  }
  next->segments = std::move(kept);
  publish(std::move(next));
  return removed;
}

void Index::compact(int threads) {
  std::lock_guard<std::mutex> writer(writer_mutex_);
  auto snap = snapshot();
  if (snap->segments.empty()) return;
  auto next = std::make_shared<Snapshot>(*snap);
  const size_t live = snap->live();
  next->segments = {{merge(snap->segments, true, threads), nullptr, nullptr, live}};
  publish(std::move(next));
}

void Index::restore(std::vector<std::string> columns, std::vector<SegmentView> segments) {
  std::lock_guard<std::mutex> writer(writer_mutex_);
  for (auto& v : segments) {
    const SegmentArrays& a = v.segment->arrays();
    if (a.dim != options_.dim || a.metric != options_.metric || a.storage != options_.storage ||
        a.n_columns != columns.size())
      throw FormatError("segment: dim, metric, storage or columns differ from the index header");
    if (v.dead && v.dead->size() != (a.rows() + 63) / 64)
      throw FormatError("deleted: bitset size does not match the segment's rows");
    size_t dead = 0;
    std::shared_ptr<std::vector<uint64_t>> pos_bits;
    if (v.dead && v.segment->has_ivf()) pos_bits = std::make_shared<std::vector<uint64_t>>(v.dead->size(), 0);
    if (v.dead)
      for (size_t r = 0; r < a.rows(); ++r)
        if (test_bit(v.dead->data(), r)) {
          ++dead;
          if (pos_bits) {
            const uint32_t p = v.segment->position_of(uint32_t(r));
            (*pos_bits)[p >> 6] |= uint64_t{1} << (p & 63);
          }
        }
    v.dead_pos = pos_bits;
    v.live = a.rows() - dead;
  }
  auto next = std::make_shared<Snapshot>();
  next->columns = std::move(columns);
  next->segments = std::move(segments);
  publish(std::move(next));
}

void Index::search(const SearchRequest& req, const FilterSpec& filter, int64_t* out_ids,
                   float* out_scores) const {
  if (req.k == 0) throw ValueError("k: must be a positive integer");
  auto snap = snapshot();
  const size_t dim = options_.dim, k = req.k;
  for (const auto& c : filter.conditions)
    if (c.column >= snap->columns.size()) throw ValueError("filter: unknown attribute column");

  std::vector<Plan> plans;
  plans.reserve(snap->segments.size());
  for (const auto& v : snap->segments) plans.push_back(make_plan(v, filter, k, req.nprobe, req.exact));

  std::vector<float> unit;
  const float* queries = req.queries;
  if (options_.metric == Metric::cos) {
    unit = unit_rows(req.queries, req.nq, dim, "queries");
    queries = unit.data();
  }
  // Queries go through the segments in small batches, so batched kernels
  // (exact scans) reuse each block of rows while it is in cache.
  constexpr size_t kQueryBatch = 1024;
  parallel_for(req.nq, req.threads, [&](size_t q0, size_t q1) {
    // Buffers live as long as the thread, so a request allocates nothing.
    thread_local Scratch scratch;
    thread_local std::vector<TopK> tops;
    for (size_t b0 = q0; b0 < q1; b0 += kQueryBatch) {
      const size_t m = std::min(kQueryBatch, q1 - b0);
      tops.resize(std::max(tops.size(), m), TopK(1));
      for (size_t i = 0; i < m; ++i) tops[i].reset(k);
      for (size_t s = 0; s < snap->segments.size(); ++s)
        search_segment_batch(queries + b0 * dim, m, snap->segments[s], plans[s], uint32_t(s),
                             tops.data(), scratch);
      for (size_t i = 0; i < m; ++i) write_hits(*snap, tops[i], queries + (b0 + i) * dim, b0 + i, k, out_ids, out_scores);
    }
  });
}

void Index::write_hits(const Snapshot& snap, const TopK& top, const float* q, size_t qi, size_t k,
                       int64_t* out_ids, float* out_scores) const {
  double qnorm = 0;
  if (options_.metric == Metric::l2)
    for (size_t d = 0; d < options_.dim; ++d) qnorm += double(q[d]) * q[d];
  const auto hits = top.sorted();
  for (size_t j = 0; j < k; ++j) {
    if (j < hits.size()) {
      const Hit& h = hits[j];
      out_ids[qi * k + j] = int64_t(snap.segments[h.segment].segment->arrays().ids[h.row]);
      out_scores[qi * k + j] =
          options_.metric == Metric::l2 ? float(std::max(0.0, qnorm - double(h.score))) : h.score;
    } else {
      out_ids[qi * k + j] = -1;
      out_scores[qi * k + j] = std::numeric_limits<float>::quiet_NaN();
    }
  }
}

}  // namespace engine::ann
