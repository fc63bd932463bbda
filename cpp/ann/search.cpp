#include "ann/search.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "ann/quantise.hpp"
#include "common/prefetch.hpp"
#include "simd/i8_blocks.hpp"
#include "simd/u4_blocks.hpp"
#include "simd/dispatch.hpp"

namespace engine::ann {
namespace {

constexpr size_t kBlock = 256;  // rows scored per kernel call
// A 4-bit scan nominates this many times plan.rerank rows for the i8 codes
// to re-score; it is used when its rows are at least kNibbleScanMin times
// that many (below, re-scoring costs more than the halved stream saves).
// Measured on the pipeline benchmark's largest merchant (110,000 rows,
// k = 400): recall@400 of 3x nominees 0.999+ against the exact order.
constexpr size_t kNibbleNominees = 3;
constexpr size_t kNibbleScanMin = 24;
// Every kSampleStride-th 32-row block is scored first; the sample's score
// at 1.5 times the nominees' share is a floor most rows fail at once (too
// high, with a chance of ~0.3 %, and the scan is repeated without it).
constexpr size_t kSampleStride = 32;
constexpr size_t kSampleRankMin = 16;
// The i8 re-score's k-th score must clear the 4-bit cut by this many standard
// deviations of the 4-bit scores' error, else the range is nominated from
// its i8 codes (scan_codes). On the pipeline benchmark's merchants the
// margin is 1.4-4.7 sigma at k = 10-100 (p5 1.8-3.3) and 2.2+ at k = 400,
// where 4-bit nominees kept recall 0.998-1.000; a merchant of near-equal
// rows (tests/test_vector_index_code_scans.py) has 0.9 sigma and lost
// recall (0.76 against the i8 scan's 0.90) until it fell back.
constexpr double kNibbleSafety = 2.0;

// Exact scans: the row passes every condition, is live and allowed.
bool passes_checks(const Plan& plan, const int64_t* attrs, size_t n, size_t pos, uint32_t row) {
  if (plan.dead && test_bit(plan.dead, row)) return false;
  if (!plan.allow_bits.empty() && !test_bit(plan.allow_bits.data(), row)) return false;
  for (const Condition* c : plan.checks)
    if (!c->contains(attrs[size_t{c->column} * n + pos])) return false;
  return true;
}

// IVF walk: the same test by list position, where the walk's bitsets and
// attribute copies (int32 when they fit: the columns prefetch_checks reads)
// are laid out.
bool passes_at(const Plan& plan, const Segment& seg, size_t p) {
  if (plan.dead && test_bit(plan.dead, p)) return false;
  if (!plan.allow_bits.empty() && !test_bit(plan.allow_bits.data(), p)) return false;
  const SegmentArrays& a = seg.arrays();
  const auto& narrow = seg.list_attrs32();
  for (const Condition* c : plan.checks) {
    const auto& bits = seg.list_bits(c->column);
    const size_t at = size_t{c->column} * a.rows() + p;
    const int64_t v = !bits.empty() ? int64_t((bits[p >> 6] >> (p & 63)) & 1u)
                      : narrow.empty() ? a.list_attrs[at] : int64_t{narrow[at]};
    if (!c->contains(v)) return false;
  }
  return true;
}

// ok[j] &= column value j satisfies the condition, for one column slice.
template <typename T>
void check_column(const Condition& c, const T* col, size_t m, uint8_t* ok) {
  const auto& vals = c.values;
  if (!c.flags.empty()) {
    // Values outside [lo, hi] read the zero byte past the end.
    const uint8_t* flags = c.flags.data();
    const uint64_t lo = uint64_t(c.lo), past = c.flags.size() - 1;
    for (size_t j = 0; j < m; ++j) ok[j] &= flags[std::min(uint64_t(int64_t(col[j])) - lo, past)];
  } else if (!c.bits.empty()) {
    // Without branches: most values of a store filter's column are in
    // range, and the test's outcome is a coin flip the CPU cannot predict.
    const uint64_t* bits = c.bits.data();
    const uint64_t lo = uint64_t(c.lo), last = c.bits.size() - 1, span = 64 * c.bits.size();
    for (size_t j = 0; j < m; ++j) {
      const uint64_t o = uint64_t(int64_t(col[j])) - lo;  // wraps below lo
      const uint64_t word = bits[std::min(o >> 6, last)];
      ok[j] &= uint8_t(unsigned(o < span) & unsigned(word >> (o & 63)));
    }
  } else if (vals.size() == 1) {
    const int64_t v = vals[0];
    for (size_t j = 0; j < m; ++j) ok[j] &= uint8_t(int64_t(col[j]) == v);
  } else if (vals.size() <= 8) {
    for (size_t j = 0; j < m; ++j) {
      uint8_t hit = 0;
      for (int64_t v : vals) hit |= uint8_t(int64_t(col[j]) == v);
      ok[j] &= hit;
    }
  } else {
    for (size_t j = 0; j < m; ++j) ok[j] &= uint8_t(c.contains(int64_t(col[j])));
  }
}

// The positions in [b, e) that pass every check, written to out as offsets
// from `origin` (<= b), ok[j] flagging position b + j. Each condition is one
// tight loop over a column (int32 when the values fit), so the common ones
// vectorise; survivors are compacted through bit masks.
size_t filter_block(const Plan& plan, const Segment& seg, size_t origin, size_t b, size_t e,
                    uint32_t* out, uint8_t* ok) {
  const SegmentArrays& a = seg.arrays();
  const size_t m = e - b, n = a.rows();
  const auto& narrow = seg.list_attrs32();
  std::fill(ok, ok + m, uint8_t{1});
  for (const Condition* c : plan.checks) {
    const size_t at = size_t{c->column} * n + b;
    if (!narrow.empty())
      check_column(*c, narrow.data() + at, m, ok);
    else
      check_column(*c, a.list_attrs.data() + at, m, ok);
  }
  if (plan.dead)
    for (size_t j = 0; j < m; ++j) ok[j] &= uint8_t(!test_bit(plan.dead, b + j));
  if (!plan.allow_bits.empty())
    for (size_t j = 0; j < m; ++j) ok[j] &= uint8_t(test_bit(plan.allow_bits.data(), b + j));
  const uint32_t shift = uint32_t(b - origin);
  size_t count = 0, j = 0;
#if defined(__SSE2__)
  // Sixteen flags at a time into a bit mask: only the survivors cost a step.
  const __m128i zero = _mm_setzero_si128();
  for (; j + 16 <= m; j += 16) {
    const __m128i flags = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ok + j));
    for (unsigned mask = ~unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(flags, zero))) & 0xffffu; mask;
         mask &= mask - 1)
      out[count++] = shift + uint32_t(j + unsigned(__builtin_ctz(mask)));
  }
#endif
  for (; j < m; ++j) {
    out[count] = shift + uint32_t(j);
    count += ok[j];
  }
  return count;
}

bool has_checks(const Plan& plan) {
  return plan.dead || !plan.allow_bits.empty() || !plan.checks.empty();
}

// Bit t set when x[t] > threshold, t < 8 (false for NaN, like the scalar test).
unsigned above8(const float* x, float threshold) {
#if defined(__SSE2__)
  const __m128 t = _mm_set1_ps(threshold);
  return unsigned(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(x), t))) |
         unsigned(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(x + 4), t))) << 4;
#else
  unsigned mask = 0;
  for (unsigned i = 0; i < 8; ++i) mask |= unsigned(x[i] > threshold) << i;
  return mask;
#endif
}

// The largest of x[0, n), n > 0, with independent running maxima (a single
// one would be a chain of dependent comparisons).
float max_of(const float* x, size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  if (n >= 8) {
    __m128 m0 = _mm_loadu_ps(x), m1 = _mm_loadu_ps(x + 4);
    for (i = 8; i + 8 <= n; i += 8) {
      m0 = _mm_max_ps(m0, _mm_loadu_ps(x + i));
      m1 = _mm_max_ps(m1, _mm_loadu_ps(x + i + 4));
    }
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, _mm_max_ps(m0, m1));
    float best = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
    for (; i < n; ++i) best = std::max(best, x[i]);
    return best;
  }
#endif
  float best = x[0];
  for (i = 1; i < n; ++i) best = std::max(best, x[i]);
  return best;
}

// Offers scores[j] for row first + (rows ? rows[j] : j) to top. Most rows
// lose to the current threshold: eight are compared at once into a bit mask
// and only the winners reach top.
void offer(const float* scores, const uint32_t* rows, uint32_t first, size_t m, uint32_t seg,
           TopK& top) {
  auto row = [&](size_t j) { return first + (rows ? rows[j] : uint32_t(j)); };
  size_t j = 0;
  for (; j + 8 <= m; j += 8)
    for (unsigned mask = above8(scores + j, top.threshold()); mask; mask &= mask - 1) {
      const unsigned t = unsigned(__builtin_ctz(mask));
      top.push(scores[j + t], seg, row(j + t));
    }
  for (; j < m; ++j) top.push(scores[j], seg, row(j));
}

// offer() for rows whose pass flag is set.
void offer_masked(const float* scores, const uint8_t* pass, uint32_t first, size_t m, uint32_t seg,
                  TopK& top) {
  for (size_t j = 0; j < m; ++j)
    if (pass[j]) top.push(scores[j], seg, first + uint32_t(j));
}

// The next list's attribute columns: the filter reads them first, and a
// list is too short a stream for the hardware prefetcher to catch.
void prefetch_checks(const Plan& plan, const Segment& seg, uint32_t list) {
  const SegmentArrays& a = seg.arrays();
  const size_t p0 = a.list_offsets[list], p1 = a.list_offsets[list + size_t{1}];
  const bool narrow = !seg.list_attrs32().empty();
  const size_t width = narrow ? 4 : 8;
  for (const Condition* c : plan.checks) {
    const auto& bits = seg.list_bits(c->column);
    if (!bits.empty()) {
      for (size_t w = p0 >> 6; w <= (p1 - 1) >> 6 && p1 > p0; w += 8) __builtin_prefetch(bits.data() + w);
      continue;
    }
    const char* col = narrow ? reinterpret_cast<const char*>(seg.list_attrs32().data() + size_t{c->column} * a.rows())
                             : reinterpret_cast<const char*>(a.list_attrs.data() + size_t{c->column} * a.rows());
    for (size_t off = p0 * width; off < p1 * width; off += 64) __builtin_prefetch(col + off);
  }
}

// The next list's codes, fetched while this one is scored: a list is a few
// KB at a random place, too short a stream for the hardware prefetcher to
// ramp up, and waiting for memory was half of an unfiltered walk's time.
void prefetch_codes(const Segment& seg, uint32_t list) {
  const SegmentArrays& a = seg.arrays();
  const size_t p0 = a.list_offsets[list], p1 = a.list_offsets[list + size_t{1}];
  const char* codes = reinterpret_cast<const char*>(a.codes.data());
  size_t b0 = p0 * a.dim * storage_bytes(a.storage), b1 = p1 * a.dim * storage_bytes(a.storage);
  if (!seg.list_blocks().empty()) {  // the interleaved copy is what score_codes reads
    const size_t block_bytes = simd::i8_groups(a.dim) * simd::kI8BlockRows * 4;
    codes = reinterpret_cast<const char*>(seg.list_blocks().data());
    b0 = p0 / simd::kI8BlockRows * block_bytes;
    b1 = simd::i8_blocks(p1) * block_bytes;
  }
  for (size_t off = b0; off < b1; off += 64) __builtin_prefetch(codes + off);
}

// offer() for list positions first + j, checking the filter only for the
// rows that would enter the top k (found eight at a time, as in offer()).
void offer_checked(const float* scores, uint32_t first, size_t m, const Plan& plan,
                   const Segment& segment, uint32_t seg, TopK& top) {
  auto consider = [&](size_t j) {
    if (scores[j] > top.threshold() && passes_at(plan, segment, first + j))
      top.push(scores[j], seg, uint32_t(first + j));
  };
  size_t j = 0;
  for (; j + 8 <= m; j += 8)
    for (unsigned mask = above8(scores + j, top.threshold()); mask; mask &= mask - 1)
      consider(j + unsigned(__builtin_ctz(mask)));
  for (; j < m; ++j) consider(j);
}

// The f32 originals of rows about to be re-scored, scattered over the catalogue.
void prefetch_rows(const SegmentArrays& a, const std::vector<uint32_t>& rows) {
  prefetch_listed(a.vectors.data(), a.dim * sizeof(float), rows.data(), rows.size());
}

// Exact scores of rows (indices into the f32 originals; contiguous from
// `first` when rows is null) offered to top.
void score_rows(const float* q, const SegmentArrays& a, const uint32_t* rows, uint32_t first,
                size_t m, uint32_t seg, TopK& top, Scratch& s) {
  const auto& k = simd::active();
  s.scores.resize(kBlock);
  for (size_t i = 0; i < m; i += kBlock) {
    const size_t b = std::min(kBlock, m - i);
    const uint32_t* idx = rows ? rows + i : nullptr;
    const float* base = rows ? a.vectors.data() : a.vectors.data() + (size_t{first} + i) * a.dim;
    k.dot_f32(q, base, idx, b, a.dim, s.scores.data());
    if (a.metric == Metric::l2)
      for (size_t j = 0; j < b; ++j)
        s.scores[j] = 2 * s.scores[j] - a.sqnorms[idx ? idx[j] : first + i + j];
    offer(s.scores.data(), idx, idx ? 0 : uint32_t(first + i), b, seg, top);
  }
}

// Visits the rows of an exact plan that pass its checks, in blocks:
// score(rows, first, m) for rows first + j (rows null: contiguous) or rows[j].
template <class Score>
void visit_exact(const SegmentArrays& a, const Plan& plan, Scratch& s, Score score) {
  const size_t n = a.rows();
  const bool check = has_checks(plan);
  auto scan_range = [&](uint32_t r0, uint32_t r1) {
    if (!check) return score(nullptr, r0, size_t{r1 - r0});
    for (uint32_t b = r0; b < r1; b += kBlock) {
      const uint32_t e = std::min<uint32_t>(r1, b + uint32_t(kBlock));
      s.rows.clear();
      for (uint32_t r = b; r < e; ++r)
        if (passes_checks(plan, a.attrs.data(), n, r, r)) s.rows.push_back(r);
      score(s.rows.data(), 0, s.rows.size());
    }
  };
  if (plan.all_rows) {
    scan_range(0, uint32_t(n));
  } else if (!plan.ranges.empty()) {
    for (auto [r0, r1] : plan.ranges) scan_range(r0, r1);
  } else if (!check) {
    score(plan.rows.data(), 0, plan.rows.size());
  } else {
    s.rows.clear();
    for (uint32_t r : plan.rows)
      if (passes_checks(plan, a.attrs.data(), n, r, r)) s.rows.push_back(r);
    score(s.rows.data(), 0, s.rows.size());
  }
}

void scan_exact(const float* q, const SegmentArrays& a, const Plan& plan, uint32_t seg, TopK& top,
                Scratch& s) {
  visit_exact(a, plan, s, [&](const uint32_t* rows, uint32_t first, size_t m) {
    score_rows(q, a, rows, first, m, seg, top, s);
  });
}

// The query quantised like the centroid codes and zero-padded to whole
// groups of 4 (dot_i8_blocked): the integer dot product times both scales
// approximates <q, c>.
const int8_t* quantised_query(const float* q, size_t dim, Scratch& s) {
  if (s.q8_for == q) return s.q8.data();
  s.q8.assign(4 * simd::i8_groups(dim), 0);
  s.q8_scale = quantise_i8(q, dim, s.q8.data());
  s.q8_for = q;
  return s.q8.data();
}

// The query with the lists' per-dimension scales folded in, quantised:
// int dot(q', code) * scale approximates <q, x>. Cached per scale vector.
const int8_t* query_for_codes(const float* q, const SegmentArrays& a, Scratch& s) {
  if (s.qc_for == a.code_scales.data() && s.qc_query == q) return s.qc.data();
  s.qc_tmp.resize(a.dim);
  for (size_t d = 0; d < a.dim; ++d) s.qc_tmp[d] = q[d] * a.code_scales[d];
  s.qc.assign(4 * simd::i8_groups(a.dim), 0);  // zero-padded for dot_i8_blocked
  s.qc_scale = quantise_i8(s.qc_tmp.data(), a.dim, s.qc.data());
  s.qc_for = a.code_scales.data();
  s.qc_query = q;
  return s.qc.data();
}

// Keys pack (score, list) into one integer so that ascending order is best
// score first, ties by list id.
uint64_t list_key(float score, uint32_t list) {
  uint32_t bits;
  std::memcpy(&bits, &score, sizeof bits);
  bits = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;  // ascending as floats
  return (uint64_t{~bits} << 32) | list;
}

// The i-th list to probe. Two stages: int8 centroid codes score every list
// approximately; the best hint + 8 of those estimates are re-scored in f32
// and sorted exactly. A filtered walk that goes further continues with the
// rest in approximate order.
uint32_t list_at(const float* q, const Segment& seg, size_t i, size_t hint, Scratch& s) {
  const SegmentArrays& a = seg.arrays();
  const size_t nlist = a.nlist, dim = a.dim;
  const auto& k = simd::active();
  if (s.ranked_for != a.centroids.data()) {
    s.ranked_for = a.centroids.data();
    const size_t blocks = simd::i8_blocks(nlist);
    s.list_int_scores.resize(blocks * simd::kI8BlockRows);
    k.dot_i8_blocked(quantised_query(q, dim, s), seg.centroid_blocks().data(), blocks,
                     simd::i8_groups(dim), s.list_int_scores.data());
    auto& approx = s.list_approx;
    approx.resize(nlist);
    const float* cs = seg.centroid_code_scales().data();
    const float qs = s.q8_scale;
    for (size_t c = 0; c < nlist; ++c) approx[c] = float(s.list_int_scores[c]) * qs * cs[c];
    if (a.metric == Metric::l2)
      for (size_t c = 0; c < nlist; ++c) approx[c] = 2 * approx[c] - a.centroid_sqnorms[c];
    // The int8 ranking is close: re-scoring hint + 8 lists in f32 gave the
    // same recall at 1M rows as re-scoring 4 * hint, for a third of the work.
    const size_t exact = std::min(nlist, std::max<size_t>(16, hint + 8));
    // Nominated without sorting the estimates: the maxima of 4 * exact
    // blocks are scores of distinct lists, so the exact-th largest maximum
    // is a floor that at least `exact` lists reach, and rarely many more.
    const size_t nb = std::min(nlist, 4 * exact);
    auto& maxima = s.list_maxima;
    maxima.resize(nb);
    for (size_t b = 0; b < nb; ++b) {
      const size_t c0 = b * nlist / nb, c1 = (b + 1) * nlist / nb;
      maxima[b] = max_of(approx.data() + c0, c1 - c0);
    }
    std::nth_element(maxima.begin(), maxima.begin() + (exact - 1), maxima.end(), std::greater<float>());
    const float below_floor = std::nextafter(maxima[exact - 1], -std::numeric_limits<float>::infinity());
    auto& cand = s.list_candidates;  // (estimate, list) at or above the floor
    cand.clear();
    size_t c = 0;
    for (; c + 8 <= nlist; c += 8)
      for (unsigned mask = above8(approx.data() + c, below_floor); mask; mask &= mask - 1) {
        const uint32_t list = uint32_t(c + unsigned(__builtin_ctz(mask)));
        cand.emplace_back(approx[list], list);
      }
    for (; c < nlist; ++c)
      if (approx[c] > below_floor) cand.emplace_back(approx[c], uint32_t(c));
    std::nth_element(cand.begin(), cand.begin() + (exact - 1), cand.end(),
                     [](const auto& x, const auto& y) { return x.first > y.first; });
    s.list_picks.resize(exact);
    for (size_t j = 0; j < exact; ++j) s.list_picks[j] = cand[j].second;
    s.list_scores.resize(exact);
    k.dot_f32(q, a.centroids.data(), s.list_picks.data(), exact, dim, s.list_scores.data());
    s.list_keys.resize(exact);
    for (size_t j = 0; j < exact; ++j) {
      float sc = s.list_scores[j];
      if (a.metric == Metric::l2) sc = 2 * sc - a.centroid_sqnorms[s.list_picks[j]];
      s.list_keys[j] = list_key(sc, s.list_picks[j]);
    }
    std::sort(s.list_keys.begin(), s.list_keys.end());
    s.ranked = exact;
  }
  if (i >= s.ranked) {
    // Rare (long filtered walks): the remaining lists in approximate order,
    // sorted lazily in growing chunks.
    if (s.list_keys.size() < nlist) {
      s.list_taken.assign(nlist, 0);
      for (uint64_t key : s.list_keys) s.list_taken[uint32_t(key)] = 1;
      for (size_t c = 0; c < nlist; ++c)
        if (!s.list_taken[c]) s.list_keys.push_back(list_key(s.list_approx[c], uint32_t(c)));
    }
    const size_t upto = std::min(nlist, std::max(2 * s.ranked, i + 1));
    auto b = s.list_keys.begin();
    std::partial_sort(b + s.ranked, b + upto, s.list_keys.end());
    s.ranked = upto;
  }
  return uint32_t(s.list_keys[i]);
}

// Approximate inner products of the compact codes at base + (idx ? idx[j] : j)
// rows of codes, j < m, into s.scores.
void dot_codes(const float* q, const SegmentArrays& a, const uint8_t* base, const uint32_t* idx,
               size_t m, Scratch& s) {
  const auto& k = simd::active();
  const size_t dim = a.dim;
  float* out = s.scores.data();
  switch (a.storage) {
    case Storage::f32:
      k.dot_f32(q, reinterpret_cast<const float*>(base), idx, m, dim, out);
      break;
    case Storage::f16:
      k.dot_f16(q, reinterpret_cast<const uint16_t*>(base), idx, m, dim, out);
      break;
    case Storage::i8: {
      k.dot_i8(query_for_codes(q, a, s), reinterpret_cast<const int8_t*>(base), idx, m, dim,
               s.int_scores.data());
      const float scale = s.qc_scale;
      for (size_t j = 0; j < m; ++j) out[j] = float(s.int_scores[j]) * scale;
      break;
    }
  }
}

// Approximate scores of list positions b + (idx ? idx[j] : j), j < m.
void score_codes(const float* q, const Segment& seg, size_t b, const uint32_t* idx, size_t m, Scratch& s) {
  const SegmentArrays& a = seg.arrays();
  if (!idx && !seg.list_blocks().empty()) {
    // Contiguous positions: the whole blocks covering them, interleaved.
    const size_t groups = simd::i8_groups(a.dim), b0 = b / simd::kI8BlockRows;
    const size_t blocks = simd::i8_blocks(b + m) - b0;
    s.block_scores.resize(blocks * simd::kI8BlockRows);
    simd::active().dot_i8_blocked(query_for_codes(q, a, s),
                                  seg.list_blocks().data() + b0 * groups * simd::kI8BlockRows * 4, blocks,
                                  groups, s.block_scores.data());
    const int32_t* at = s.block_scores.data() + (b - b0 * simd::kI8BlockRows);
    const float scale = s.qc_scale;
    for (size_t j = 0; j < m; ++j) s.scores[j] = float(at[j]) * scale;
  } else {
    dot_codes(q, a, a.codes.data() + b * a.dim * storage_bytes(a.storage), idx, m, s);
  }
  if (a.metric == Metric::l2) {
    float* out = s.scores.data();
    for (size_t j = 0; j < m; ++j) out[j] = 2 * out[j] - a.sqnorms[a.list_rows[b + (idx ? idx[j] : j)]];
  }
}

// Filters list `list` into st and prefetches the codes its matching rows will
// be scored from. Done a list ahead of the scoring (walk_checked), so those
// scattered fetches overlap the previous list's work instead of stalling it.
void stage_list(const Plan& plan, const Segment& segment, uint32_t list, StagedList& st) {
  const SegmentArrays& a = segment.arrays();
  st.p0 = a.list_offsets[list];
  const size_t p1 = a.list_offsets[list + size_t{1}], m = p1 - st.p0;
  st.rows = m;
  if (st.picks.size() < m) st.picks.resize(m);  // (never shrunk: resizing up would zero-fill)
  if (st.pass.size() < m) st.pass.resize(m);
  size_t count = 0;
  for (size_t b = st.p0; b < p1; b += kBlock)
    count += filter_block(plan, segment, st.p0, b, std::min(p1, b + kBlock), st.picks.data() + count,
                          st.pass.data() + (b - st.p0));
  st.count = count;
  // When most of the list passes, streaming it whole and masking is cheaper
  // than gathering the rows that pass.
  st.whole = 2 * count >= m;
  if (st.whole) return prefetch_codes(segment, list);
  const size_t code_bytes = a.dim * storage_bytes(a.storage);
  prefetch_listed(a.codes.data() + st.p0 * code_bytes, code_bytes, st.picks.data(), count);
}

// Scores a staged list's matching rows and offers them to top.
void score_staged(const float* q, const Segment& segment, const StagedList& st, uint32_t seg,
                  TopK& top, Scratch& s) {
  if (st.whole) {
    for (size_t b = 0; b < st.rows; b += kBlock) {
      const size_t m = std::min(kBlock, st.rows - b);
      score_codes(q, segment, st.p0 + b, nullptr, m, s);
      offer_masked(s.scores.data(), st.pass.data() + b, uint32_t(st.p0 + b), m, seg, top);
    }
    return;
  }
  for (size_t i = 0; i < st.count; i += kBlock) {
    const size_t m = std::min(kBlock, st.count - i);
    score_codes(q, segment, st.p0, st.picks.data() + i, m, s);
    offer(s.scores.data(), st.picks.data() + i, uint32_t(st.p0), m, seg, top);
  }
}

// Filtered walk for selective filters: every row of a visited list is
// checked, and only those that pass are scored. Three lists are in flight:
// list li is scored while list li + 1 is filtered (its matching rows'
// codes prefetched) and the attributes of list li + 2 are prefetched. Lists
// are visited until plan.nprobe are done and plan.target_matches rows matched.
void walk_checked(const float* q, const Segment& segment, const Plan& plan, uint32_t seg, Scratch& s) {
  const SegmentArrays& a = segment.arrays();
  const uint32_t hint = plan.expected_lists;
  StagedList* cur = &s.staged[0];
  StagedList* next = &s.staged[1];
  const uint32_t first = list_at(q, segment, 0, hint, s);
  if (s.ranked > 1) prefetch_checks(plan, segment, list_at(q, segment, 1, hint, s));
  stage_list(plan, segment, first, *cur);
  size_t matches = 0;
  for (size_t li = 0;; ++li) {
    const bool last = li + 1 >= a.nlist ||
                      (li + 1 >= plan.nprobe && matches + cur->count >= plan.target_matches);
    if (!last) {
      // (Never past the sorted lists: a walk rarely gets there.)
      if (li + 2 < s.ranked) prefetch_checks(plan, segment, list_at(q, segment, li + 2, hint, s));
      stage_list(plan, segment, list_at(q, segment, li + 1, hint, s), *next);
    }
    score_staged(q, segment, *cur, seg, s.approx, s);
    matches += cur->count;
    if (last) break;
    std::swap(cur, next);
  }
}

// Unfiltered walk, or one checking only the rows that would enter the top k
// (plan.check_late: most rows match).
void walk_unchecked(const float* q, const Segment& segment, const Plan& plan, uint32_t seg, Scratch& s) {
  const SegmentArrays& a = segment.arrays();
  const bool check = has_checks(plan);
  size_t matches = 0;
  for (size_t li = 0; li < a.nlist; ++li) {
    if (li >= plan.nprobe && (!check || matches >= plan.target_matches)) break;
    const uint32_t list = list_at(q, segment, li, plan.expected_lists, s);
    const size_t p0 = a.list_offsets[list], p1 = a.list_offsets[list + size_t{1}];
    // (Only lists the walk will visit, and never past the sorted ones.)
    if (li + 1 < s.ranked && (li + 1 < plan.nprobe || check)) {
      const uint32_t next = list_at(q, segment, li + 1, plan.expected_lists, s);
      prefetch_codes(segment, next);
      // A late check reads the attributes of the rows that beat the
      // threshold, scattered over the list: they are prefetched too.
      if (check) prefetch_checks(plan, segment, next);
    }
    for (size_t b = p0; b < p1; b += kBlock) {
      const size_t m = std::min(p1, b + kBlock) - b;
      score_codes(q, segment, b, nullptr, m, s);
      if (check) {
        offer_checked(s.scores.data(), b, m, plan, segment, seg, s.approx);
        matches += size_t(double(m) * plan.selectivity);
      } else {
        // Candidates are kept as list positions; rows are looked up only for
        // the few that survive (list_rows would be one more stream per list).
        offer(s.scores.data(), nullptr, uint32_t(b), m, seg, s.approx);
      }
    }
  }
}

// Exact scores of the nominated rows s.rerank_rows, offered to top.
void rescore(const float* q, const SegmentArrays& a, uint32_t seg, TopK& top, Scratch& s) {
  prefetch_rows(a, s.rerank_rows);
  score_rows(q, a, s.rerank_rows.data(), 0, s.rerank_rows.size(), seg, top, s);
}

void walk_ivf(const float* q, const Segment& segment, const Plan& plan, uint32_t seg, TopK& top,
              Scratch& s) {
  const SegmentArrays& a = segment.arrays();
  s.approx.reset(plan.rerank ? plan.rerank : top.capacity());
  s.scores.resize(kBlock);
  s.int_scores.resize(kBlock);
  if (has_checks(plan) && !plan.check_late)
    walk_checked(q, segment, plan, seg, s);
  else
    walk_unchecked(q, segment, plan, seg, s);
  if (!plan.rerank) {  // best first, so that ties at the k-th score keep the lowest rows
    for (const Hit& h : s.approx.sorted()) top.push(h.score, seg, a.list_rows[h.row]);
    return;
  }
  // Compact codes only nominate candidates; their order comes from f32.
  s.rerank_rows.clear();
  for (const Hit& h : s.approx.best()) s.rerank_rows.push_back(a.list_rows[h.row]);
  rescore(q, a, seg, top, s);
}

// The rows of an exact plan scanned from the 4-bit codes: contiguous
// ranges without per-row checks, many more rows than nominees. Their total, or 0.
size_t nibble_scan_rows(const Segment& segment, const Plan& plan) {
  if (segment.row_nibbles().empty() || has_checks(plan) || !(plan.all_rows || !plan.ranges.empty())) return 0;
  size_t total = plan.all_rows ? segment.rows() : 0;
  for (auto [r0, r1] : plan.ranges) total += r1 - r0;
  return total >= kNibbleScanMin * kNibbleNominees * plan.rerank ? total : 0;
}

// The 4-bit score of the last nominee and the standard deviation of a row's
// 4-bit score around its i8 one.
struct NibbleCut {
  float cut;
  double sigma;
};

// The nominees of a 4-bit scan of the plan's rows into s.nominees: the
// kNibbleNominees * plan.rerank best by <w, nibbles>, where w is the i8
// query (query_for_codes) times each dimension's nibble step: ordered as
// the i8 codes' dot products up to the nibbles' rounding.
NibbleCut scan_nibbles(const float* q, const Segment& segment, const Plan& plan, size_t total, uint32_t seg,
                       Scratch& s) {
  const SegmentArrays& a = segment.arrays();
  const auto& k = simd::active();
  const size_t dim = a.dim, groups = simd::i8_groups(dim), block_bytes = groups * 64;
  const uint8_t* blocks = segment.row_nibbles().data();
  const int8_t* q8 = query_for_codes(q, a, s);
  float largest = 0;
  for (size_t d = 0; d < dim; ++d) largest = std::max(largest, std::fabs(float(q8[d]) * segment.nibble_steps()[d]));
  const float w_scale = largest > 0 ? largest / 127.0f : 1.0f;
  double offset = 0;  // <q8, nibble_lows>: the same for every row, kept for l2's absolute scores
  double variance = 0;  // of a row's 4-bit score minus its i8 one, in i8 dot units
  s.u4w.assign(4 * groups, 0);
  for (size_t d = 0; d < dim; ++d) {
    const double w = double(q8[d]) * segment.nibble_steps()[d];
    s.u4w[d] = int8_t(std::lrint(w / w_scale));
    offset += double(q8[d]) * segment.nibble_lows()[d];
    // A code rounded to its level (uniform over a step) and the weight to
    // the i8 grid (uniform over w_scale, times a level, E[level^2] ~ 80).
    variance += w * w / 12.0 + double(w_scale) * w_scale / 12.0 * 80.0;
  }
  const float scale = s.qc_scale * w_scale, shift = float(offset) * s.qc_scale;
  auto score = [&](int32_t sum, uint32_t row) {
    const float x = shift + scale * float(sum);
    return a.metric == Metric::l2 ? 2 * x - a.sqnorms[row] : x;
  };
  std::vector<std::pair<uint32_t, uint32_t>> all;
  if (plan.all_rows) all.emplace_back(0, uint32_t(segment.rows()));
  const auto& ranges = plan.all_rows ? all : plan.ranges;

  const size_t wanted = kNibbleNominees * plan.rerank;
  constexpr size_t R = simd::kU4BlockRows;
  int32_t sums[R];
  s.sample.clear();
  for (auto [r0, r1] : ranges)
    for (size_t b = (r0 + R - 1) / R; (b + 1) * R <= r1; b += kSampleStride) {
      k.dot_u4_blocked(s.u4w.data(), blocks + b * block_bytes, 1, groups, sums);
      for (size_t j = 0; j < R; ++j) s.sample.push_back(score(sums[j], uint32_t(b * R + j)));
    }
  float floor = -std::numeric_limits<float>::infinity();
  const size_t rank = size_t(std::ceil(1.5 * double(wanted) * double(s.sample.size()) / double(total)));
  if (rank >= kSampleRankMin && rank < s.sample.size())
    floor = kth_largest(s.sample.data(), s.sample.size(), rank, s.keys);

  TopK& approx = s.nibble_approx;
  auto scan = [&](float at_least) {
    approx.reset(wanted);
    approx.set_floor(at_least);
    for (auto [r0, r1] : ranges)
      for (size_t b = r0; b < r1; b += kBlock) {
        const size_t m = std::min<size_t>(kBlock, r1 - b), b0 = b / R, n_blocks = simd::u4_blocks(b + m) - b0;
        s.block_scores.resize(n_blocks * R);
        k.dot_u4_blocked(s.u4w.data(), blocks + b0 * block_bytes, n_blocks, groups, s.block_scores.data());
        const int32_t* at = s.block_scores.data() + (b - b0 * R);
        // Most sums lose to the threshold: they are compared as integers
        // (a bound one below the threshold's, so rounding never drops a
        // winner) and only the others are scored and offered.
        int32_t bound = std::numeric_limits<int32_t>::min();
        const double need = (double(approx.threshold()) - shift) / scale;
        if (a.metric != Metric::l2 && need > double(bound) + 2)
          bound = need >= double(std::numeric_limits<int32_t>::max()) ? std::numeric_limits<int32_t>::max()
                                                                      : int32_t(std::floor(need)) - 1;
        s.picks.resize(m);
        const size_t count = k.above_i32(at, m, bound, s.picks.data());
        for (size_t j = 0; j < count; ++j) {
          const uint32_t row = uint32_t(b + s.picks[j]);
          approx.push(score(at[s.picks[j]], row), seg, row);
        }
      }
  };
  scan(floor);
  // Fewer rows than wanted beat the sample's floor (rare: it sits at 1.5x
  // the share wanted, with at least kSampleRankMin sampled rows above it):
  // the scan again without it.
  if (approx.size() < wanted && floor > -std::numeric_limits<float>::infinity()) scan(-std::numeric_limits<float>::infinity());
  s.nominees.clear();
  float cut = std::numeric_limits<float>::infinity();
  for (const Hit& h : approx.best()) {
    s.nominees.push_back(h.row);
    cut = std::min(cut, h.score);
  }
  const double sigma = std::sqrt(variance) * s.qc_scale * (a.metric == Metric::l2 ? 2.0 : 1.0);
  return {cut, sigma};
}

// An exact plan over many rows of a segment with compact codes: the
// row-order codes nominate plan.rerank candidates, which f32 re-scores, as
// after a walk. Listed rows (a category's, scattered over the catalogue)
// are one cache line each (i8 at 64 dimensions) instead of four, and the
// next block's lines are requested while this block is scored. Long
// contiguous ranges are first narrowed by their 4-bit codes (scan_nibbles).
void scan_codes(const float* q, const Segment& segment, const Plan& plan, uint32_t seg, TopK& top,
                Scratch& s) {
  const SegmentArrays& a = segment.arrays();
  const size_t bytes = a.dim * storage_bytes(a.storage);
  const uint8_t* codes = segment.row_codes().data();
  s.approx.reset(plan.rerank);
  s.scores.resize(kBlock);
  s.int_scores.resize(kBlock);
  auto nominate = [&](const uint32_t* rows, uint32_t first, size_t m) {
    for (size_t i = 0; i < m; i += kBlock) {
      const size_t b = std::min(kBlock, m - i);
      const uint32_t* idx = rows ? rows + i : nullptr;
      if (idx && i + kBlock < m) prefetch_listed(codes, bytes, rows + i + kBlock, std::min(kBlock, m - i - kBlock));
      dot_codes(q, a, idx ? codes : codes + (size_t{first} + i) * bytes, idx, b, s);
      if (a.metric == Metric::l2)
        for (size_t j = 0; j < b; ++j) s.scores[j] = 2 * s.scores[j] - a.sqnorms[idx ? idx[j] : first + i + j];
      offer(s.scores.data(), idx, idx ? 0 : uint32_t(first + i), b, seg, s.approx);
    }
  };
  bool scan_i8 = true;  // nominate from the i8 codes of every row of the plan
  if (const size_t total = nibble_scan_rows(segment, plan)) {
    const NibbleCut nibbles = scan_nibbles(q, segment, plan, total, seg, s);
    prefetch_listed(codes, bytes, s.nominees.data(), std::min(kBlock, s.nominees.size()));
    nominate(s.nominees.data(), 0, s.nominees.size());
    // A row the 4-bit cut dropped scores, in i8, rarely more than a few
    // sigma above the cut. When the i8 k-th best is not that far above it
    // (many near-equal rows: variants of one product), such rows could
    // belong to the top k: the range is nominated from its i8 codes instead.
    std::vector<float>& scores = s.sample;  // (its sample is used up)
    scores.clear();
    for (const Hit& h : s.approx.best()) scores.push_back(h.score);
    const size_t k = std::min(top.capacity(), scores.size());
    if (k > 0)
      scan_i8 = double(kth_largest(scores.data(), scores.size(), k, s.keys)) - nibbles.cut <
                kNibbleSafety * nibbles.sigma;
    if (scan_i8) s.approx.reset(plan.rerank);
  }
  if (scan_i8) visit_exact(a, plan, s, nominate);
  s.rerank_rows.clear();
  for (const Hit& h : s.approx.best()) s.rerank_rows.push_back(h.row);
  rescore(q, a, seg, top, s);
}

// Exact scan of many queries at once: each block of rows is scored against
// the whole batch while it sits in cache.
void scan_exact_batch(const float* queries, size_t nq, const SegmentArrays& a, const Plan& plan,
                      uint32_t seg, TopK* tops, Scratch& s) {
  constexpr size_t kRowBlock = 512;
  const size_t dim = a.dim;
  s.batch_scores.resize(nq * kRowBlock);
  auto scan = [&](uint32_t r0, uint32_t r1) {
    for (uint32_t b = r0; b < r1; b += uint32_t(kRowBlock)) {
      const size_t m = std::min<size_t>(kRowBlock, r1 - b);
      simd::active().dot_f32_multi(queries, nq, a.vectors.data() + size_t{b} * dim, m, dim,
                                   s.batch_scores.data());
      for (size_t qi = 0; qi < nq; ++qi) {
        float* sc = s.batch_scores.data() + qi * m;
        if (a.metric == Metric::l2)
          for (size_t j = 0; j < m; ++j) sc[j] = 2 * sc[j] - a.sqnorms[b + j];
        offer(sc, nullptr, b, m, seg, tops[qi]);
      }
    }
  };
  if (plan.all_rows)
    scan(0, uint32_t(a.rows()));
  else
    for (auto [r0, r1] : plan.ranges) scan(r0, r1);
}

// Unfiltered IVF walk of many queries at once: each query picks its lists,
// then every picked list is scored for all the queries that picked it while
// its codes are in cache, instead of being fetched once per query.
void walk_ivf_batch(const float* queries, size_t nq, const Segment& segment, const Plan& plan,
                    uint32_t seg, TopK* tops, Scratch& s) {
  const SegmentArrays& a = segment.arrays();
  const size_t dim = a.dim, cap = plan.rerank ? plan.rerank : tops[0].capacity();
  auto& pairs = s.batch_pairs;  // (list, query)
  pairs.clear();
  for (size_t qi = 0; qi < nq; ++qi) {
    new_query(s);
    for (size_t li = 0; li < plan.nprobe; ++li)
      pairs.push_back((uint64_t{list_at(queries + qi * dim, segment, li, plan.expected_lists, s)} << 32) | qi);
  }
  std::sort(pairs.begin(), pairs.end());
  s.batch_approx.resize(std::max(s.batch_approx.size(), nq), TopK(1));
  for (size_t qi = 0; qi < nq; ++qi) s.batch_approx[qi].reset(cap);
  s.scores.resize(kBlock);
  s.int_scores.resize(kBlock);
  for (size_t i = 0; i < pairs.size();) {
    const uint32_t list = uint32_t(pairs[i] >> 32);
    size_t j = i;
    while (j < pairs.size() && uint32_t(pairs[j] >> 32) == list) ++j;
    if (j < pairs.size()) prefetch_codes(segment, uint32_t(pairs[j] >> 32));
    const size_t p0 = a.list_offsets[list], p1 = a.list_offsets[list + size_t{1}];
    for (size_t b = p0; b < p1; b += kBlock) {
      const size_t m = std::min(p1, b + kBlock) - b;
      for (size_t t = i; t < j; ++t) {
        const uint32_t qi = uint32_t(pairs[t]);
        score_codes(queries + qi * dim, segment, b, nullptr, m, s);
        offer(s.scores.data(), nullptr, uint32_t(b), m, seg, s.batch_approx[qi]);
      }
    }
    i = j;
  }
  for (size_t qi = 0; qi < nq; ++qi) {
    if (!plan.rerank) {
      for (const Hit& h : s.batch_approx[qi].sorted()) tops[qi].push(h.score, seg, a.list_rows[h.row]);
      continue;
    }
    s.rerank_rows.clear();
    for (const Hit& h : s.batch_approx[qi].best()) s.rerank_rows.push_back(a.list_rows[h.row]);
    rescore(queries + qi * dim, a, seg, tops[qi], s);
  }
}

}  // namespace

void search_segment_batch(const float* queries, size_t nq, const SegmentView& view, const Plan& plan,
                          uint32_t segment_index, TopK* tops, Scratch& scratch) {
  if (plan.nothing) return;
  const SegmentArrays& a = view.segment->arrays();
  if (nq > 1 && plan.exact && !has_checks(plan) && (plan.all_rows || !plan.ranges.empty())) {
    scan_exact_batch(queries, nq, a, plan, segment_index, tops, scratch);
    return;
  }
  if (nq > 1 && !plan.exact && !has_checks(plan)) {
    walk_ivf_batch(queries, nq, *view.segment, plan, segment_index, tops, scratch);
    return;
  }
  for (size_t i = 0; i < nq; ++i) {
    new_query(scratch);
    search_segment(queries + i * a.dim, view, plan, segment_index, tops[i], scratch);
  }
}

void search_segment(const float* q, const SegmentView& view, const Plan& plan, uint32_t segment_index,
                    TopK& top, Scratch& scratch) {
  if (plan.nothing) return;
  const SegmentArrays& a = view.segment->arrays();
  if (plan.exact && plan.rerank)
    scan_codes(q, *view.segment, plan, segment_index, top, scratch);
  else if (plan.exact)
    scan_exact(q, a, plan, segment_index, top, scratch);
  else
    walk_ivf(q, *view.segment, plan, segment_index, top, scratch);
}

}  // namespace engine::ann
