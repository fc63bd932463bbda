#include "ann/segment.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ann/filter.hpp"
#include "ann/quantise.hpp"
#include "simd/i8_blocks.hpp"
#include "simd/u4_blocks.hpp"

#include "common/errors.hpp"

namespace engine::ann {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw FormatError(what);
}

template <typename T>
void require_size(const Array<T>& a, size_t expected, const char* name) {
  if (a.size() != expected)
    throw FormatError(std::string(name) + ": expected " + std::to_string(expected) +
                      " elements, found " + std::to_string(a.size()));
}

// Every value below n and each exactly once.
void require_permutation(const uint32_t* rows, size_t n, const std::string& name) {
  std::vector<uint8_t> seen(n, 0);
  for (size_t i = 0; i < n; ++i) {
    require(rows[i] < n, name + ": row index out of range");
    require(!seen[rows[i]], name + ": row listed twice");
    seen[rows[i]] = 1;
  }
}

void require_offsets(const uint64_t* off, size_t count, uint64_t total, const std::string& name) {
  require(count >= 1 && off[0] == 0, name + ": must start at 0");
  for (size_t i = 1; i < count; ++i) require(off[i] >= off[i - 1], name + ": not monotone");
  require(off[count - 1] == total, name + ": does not end at the row count");
}

void validate(const SegmentArrays& a) {
  const size_t n = a.rows(), dim = a.dim, cols = a.n_columns;
  require(dim > 0 && dim <= 65536, "dim: must be in [1, 65536]");
  require(n > 0 && n < (size_t{1} << 32), "ids: row count out of range");
  require_size(a.vectors, n * dim, "vectors");
  require_size(a.sqnorms, n, "sqnorms");
  for (size_t i = 0; i < n * dim; ++i) require(std::isfinite(a.vectors[i]), "vectors: not finite");
  for (size_t i = 0; i < n; ++i) {
    require(std::isfinite(a.sqnorms[i]) && a.sqnorms[i] >= 0, "sqnorms: invalid value");
    require(a.ids[i] < (uint64_t{1} << 63), "ids: id above 2^63 - 1");
  }
  require_size(a.attrs, cols * n, "attrs");

  // Postings: per column, sorted distinct values whose row sets partition the rows.
  require_size(a.post_col, cols + 1, "post_col");
  require_offsets(a.post_col.data(), cols + 1, a.post_values.size(), "post_col");
  require_size(a.post_offsets, a.post_values.size() + cols, "post_offsets");
  require_size(a.post_rows, cols * n, "post_rows");
  for (size_t c = 0; c < cols; ++c) {
    const size_t v0 = a.post_col[c], v1 = a.post_col[c + 1];
    require(v1 > v0, "post_col: column without values");
    for (size_t g = v0 + 1; g < v1; ++g)
      require(a.post_values[g] > a.post_values[g - 1], "post_values: not strictly ascending");
    require_offsets(a.post_offsets.data() + v0 + c, v1 - v0 + 1, n, "post_offsets");
    const uint32_t* rows = a.post_rows.data() + c * n;
    require_permutation(rows, n, "post_rows");
    for (size_t g = v0; g < v1; ++g)
      for (size_t p = a.post_offsets[g + c]; p < a.post_offsets[g + c + 1]; ++p)
        require(a.attrs[c * n + rows[p]] == a.post_values[g], "post_rows: row under wrong value");
  }
  require(a.cluster_column >= -1 && a.cluster_column < static_cast<int32_t>(cols),
          "cluster_column: out of range");
  if (a.cluster_column >= 0) {  // contiguous rows per value: the postings are the identity
    const uint32_t* rows = a.post_rows.data() + size_t(a.cluster_column) * n;
    for (size_t i = 0; i < n; ++i) require(rows[i] == i, "post_rows: cluster column not contiguous");
  }

  require_size(a.sorted_ids, n, "sorted_ids");
  require_size(a.sorted_rows, n, "sorted_rows");
  require_permutation(a.sorted_rows.data(), n, "sorted_rows");
  for (size_t i = 0; i < n; ++i) {
    require(i == 0 || a.sorted_ids[i] > a.sorted_ids[i - 1], "sorted_ids: not strictly ascending");
    require(a.ids[a.sorted_rows[i]] == a.sorted_ids[i], "sorted_rows: does not match ids");
  }

  if (a.nlist == 0) {
    require(a.centroids.empty() && a.list_rows.empty() && a.codes.empty(),
            "nlist: 0 but IVF arrays present");
    return;
  }
  require(a.default_nprobe >= 1 && a.default_nprobe <= a.nlist, "default_nprobe: out of range");
  require_size(a.centroids, size_t{a.nlist} * dim, "centroids");
  require_size(a.centroid_sqnorms, a.nlist, "centroid_sqnorms");
  for (size_t i = 0; i < a.centroids.size(); ++i)
    require(std::isfinite(a.centroids[i]), "centroids: not finite");
  require_size(a.list_offsets, size_t{a.nlist} + 1, "list_offsets");
  require_offsets(a.list_offsets.data(), size_t{a.nlist} + 1, n, "list_offsets");
  require_size(a.list_rows, n, "list_rows");
  require_permutation(a.list_rows.data(), n, "list_rows");
  require_size(a.codes, n * dim * storage_bytes(a.storage), "codes");
  require_size(a.code_scales, a.storage == Storage::i8 ? dim : 0, "code_scales");
  for (size_t d = 0; d < a.code_scales.size(); ++d)
    require(std::isfinite(a.code_scales[d]) && a.code_scales[d] >= 0, "code_scales: invalid value");
  require_size(a.list_attrs, cols * n, "list_attrs");
  for (size_t c = 0; c < cols; ++c)
    for (size_t p = 0; p < n; ++p)
      require(a.list_attrs[c * n + p] == a.attrs[c * n + a.list_rows[p]],
              "list_attrs: does not match attrs");
}

}  // namespace

Segment::Segment(SegmentArrays arrays) : a_(std::move(arrays)) {
  const size_t dim = a_.dim;
  std::vector<int8_t> codes(size_t{a_.nlist} * dim);
  centroid_code_scales_.resize(a_.nlist);
  for (size_t c = 0; c < a_.nlist; ++c)
    centroid_code_scales_[c] = quantise_i8(a_.centroids.data() + c * dim, dim, codes.data() + c * dim);
  centroid_blocks_ = simd::interleave_i8(codes.data(), a_.nlist, dim);
  // Rows per value by value, for columns whose values are dense enough
  // (ids of merchants, categories, flags): counting a filter's rows is then
  // one lookup per requested value instead of a pass over the column's values.
  value_rows_.resize(a_.n_columns);
  value_min_.assign(a_.n_columns, 0);
  for (size_t c = 0; c < a_.n_columns; ++c) {
    const size_t v0 = a_.post_col[c], v1 = a_.post_col[c + 1];
    const uint64_t span = uint64_t(a_.post_values[v1 - 1]) - uint64_t(a_.post_values[v0]) + 1;
    if (span > 4 * (v1 - v0) + 1024) continue;
    value_min_[c] = a_.post_values[v0];
    value_rows_[c].assign(span, 0);
    for (size_t g = v0; g < v1; ++g)
      value_rows_[c][uint64_t(a_.post_values[g]) - uint64_t(value_min_[c])] =
          uint32_t(a_.post_offsets[g + c + 1] - a_.post_offsets[g + c]);
  }
  if (a_.nlist) {
    // Every search re-scores a few hundred nominees from the f32 originals,
    // scattered over the segment: from a memory-mapped file each is a TLB
    // miss and a page walk on its own 4 KB page. On huge pages a home feed's
    // search after other work took 426-469 us instead of 544-652 (interleaved
    // in one process, 1M rows; -27 us at the median of the pipeline's
    // candidates stage). The copy costs dim * 4 bytes a row of anonymous
    // memory; the file's pages are not read again.
    auto vectors = std::make_shared<std::vector<float, HugePageAllocator<float>>>(a_.vectors.begin(), a_.vectors.end());
    a_.vectors = Array<float>(vectors->data(), vectors->size(), vectors);
    // The same for the ids of the k hits each search returns (8 bytes a
    // row): the same search 438-456 -> 402-415 us.
    auto ids = std::make_shared<std::vector<uint64_t, HugePageAllocator<uint64_t>>>(a_.ids.begin(), a_.ids.end());
    a_.ids = Array<uint64_t>(ids->data(), ids->size(), ids);
    row_to_pos_.resize(a_.rows());
    for (size_t p = 0; p < a_.rows(); ++p) row_to_pos_[a_.list_rows[p]] = uint32_t(p);
    const bool fits = std::all_of(a_.list_attrs.begin(), a_.list_attrs.end(), [](int64_t v) {
      return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
    });
    if (fits) list_attrs32_.assign(a_.list_attrs.begin(), a_.list_attrs.end());
    list_bits_.resize(a_.n_columns);
    for (size_t c = 0; c < a_.n_columns; ++c) {
      const int64_t* col = a_.list_attrs.data() + c * a_.rows();
      if (!std::all_of(col, col + a_.rows(), [](int64_t v) { return v == 0 || v == 1; })) continue;
      list_bits_[c].assign((a_.rows() + 63) / 64, 0);
      for (size_t p = 0; p < a_.rows(); ++p) list_bits_[c][p >> 6] |= uint64_t(col[p]) << (p & 63);
    }
    if (a_.storage != Storage::f32) {
      const size_t bytes = dim * storage_bytes(a_.storage);
      row_codes_.resize(a_.rows() * bytes);
      for (size_t p = 0; p < a_.rows(); ++p)
        std::memcpy(row_codes_.data() + size_t{a_.list_rows[p]} * bytes, a_.codes.data() + p * bytes, bytes);
    }
    if (a_.storage == Storage::i8) {
      list_blocks_.assign(simd::i8_blocks(a_.rows()) * simd::i8_groups(dim) * simd::kI8BlockRows * 4, 0);
      simd::interleave_i8_into(reinterpret_cast<const int8_t*>(a_.codes.data()), a_.rows(), dim, list_blocks_.data());
      build_row_nibbles();
    }
  }
}

// Each dimension's i8 codes mapped linearly from their [min, max] onto
// [0, 15], rounded to nearest.
void Segment::build_row_nibbles() {
  const size_t n = a_.rows(), dim = a_.dim;
  const int8_t* codes = reinterpret_cast<const int8_t*>(row_codes_.data());
  std::vector<int> lo(dim, 127), hi(dim, -128);
  for (size_t r = 0; r < n; ++r)
    for (size_t d = 0; d < dim; ++d) {
      lo[d] = std::min<int>(lo[d], codes[r * dim + d]);
      hi[d] = std::max<int>(hi[d], codes[r * dim + d]);
    }
  nibble_lows_.resize(dim);
  nibble_steps_.resize(dim);
  std::vector<float> inverse(dim);
  for (size_t d = 0; d < dim; ++d) {
    nibble_lows_[d] = float(lo[d]);
    nibble_steps_[d] = float(std::max(hi[d] - lo[d], 1)) / 15.0f;
    inverse[d] = 1.0f / nibble_steps_[d];
  }
  row_nibbles_.assign(simd::u4_blocks(n) * simd::i8_groups(dim) * 64, 0);
  simd::interleave_u4_into(n, dim, [&](size_t r, size_t d) {
    const float x = (float(codes[r * dim + d]) - nibble_lows_[d]) * inverse[d];
    return uint8_t(std::clamp(std::lrint(x), 0L, 15L));
  }, row_nibbles_.data());
}

std::shared_ptr<const Segment> Segment::from_arrays(SegmentArrays arrays) {
  validate(arrays);
  return std::shared_ptr<const Segment>(new Segment(std::move(arrays)));
}

int64_t Segment::find(uint64_t id) const {
  const auto* b = a_.sorted_ids.begin();
  const auto* e = a_.sorted_ids.end();
  const auto* it = std::lower_bound(b, e, id);
  if (it == e || *it != id) return -1;
  return a_.sorted_rows[static_cast<size_t>(it - b)];
}

std::vector<std::pair<size_t, size_t>> Segment::postings(const Condition& cond) const {
  std::vector<std::pair<size_t, size_t>> out;
  const size_t n = rows(), column = cond.column;
  const int64_t* all = a_.post_values.data();
  const int64_t* it = all + a_.post_col[column];
  const int64_t* end = all + a_.post_col[column + 1];
  auto emit = [&](const int64_t* at) {
    const size_t g = size_t(at - all);
    out.emplace_back(column * n + a_.post_offsets[g + column], column * n + a_.post_offsets[g + column + 1]);
  };
  if (!cond.bits.empty()) {
    for (it = std::lower_bound(it, end, cond.lo); it != end && *it <= cond.hi; ++it)
      if (cond.contains(*it)) emit(it);
    return out;
  }
  // Many values walk the column linearly; a few search it.
  const bool linear = cond.values.size() * 16 > size_t(end - it);
  for (int64_t v : cond.values) {
    if (linear)
      while (it != end && *it < v) ++it;
    else
      it = std::lower_bound(it, end, v);
    if (it == end) break;
    if (*it == v) emit(it);
  }
  return out;
}

size_t Segment::matching_rows(const Condition& cond) const {
  const size_t column = cond.column;
  const std::vector<uint32_t>& dense = value_rows_[column];
  size_t count = 0;
  auto add = [&](int64_t v) {
    const uint64_t o = uint64_t(v) - uint64_t(value_min_[column]);  // wraps below the minimum
    if (o < dense.size()) count += dense[o];
  };
  if (!dense.empty()) {
    if (cond.bits.empty()) {
      for (int64_t v : cond.values) add(v);
    } else {  // the condition's values are its set bits
      for (size_t w = 0; w < cond.bits.size(); ++w)
        for (uint64_t word = cond.bits[w]; word; word &= word - 1)
          add(int64_t(uint64_t(cond.lo) + 64 * w + uint64_t(__builtin_ctzll(word))));
    }
    return count;
  }
  for (auto [b, e] : postings(cond)) count += e - b;
  return count;
}

std::vector<uint32_t> Segment::row_lists() const {
  std::vector<uint32_t> lists(rows());
  for (uint32_t l = 0; l < a_.nlist; ++l)
    for (size_t p = a_.list_offsets[l]; p < a_.list_offsets[l + 1]; ++p) lists[a_.list_rows[p]] = l;
  return lists;
}

}  // namespace engine::ann
