// Keeps the k highest scores seen so far; a candidate must beat threshold()
// to enter, so most are rejected by one comparison. Two layouts, by k:
// - k <= kSortedMax (searches for 10-50 results): the kept scores sorted best
//   first; a winner is inserted by counting the better scores (a loop that
//   vectorises) and shifting the worse ones. Cheaper than a heap, whose every
//   sift level is a branch the CPU mispredicts.
// - larger k (retrieval of hundreds of candidates, where insertion would
//   shift hundreds of entries): winners are appended to a buffer of 2k that
//   is cut back to its best k by selection when full, which raises the
//   threshold; an accepted candidate costs a store and, amortised, O(1).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <vector>

namespace engine::ann {

struct Hit {
  float score;
  uint32_t segment;
  uint32_t row;
};

// Unsigned keys in the order of the (non-NaN) floats.
inline uint32_t order_key(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return (b & 0x80000000u) ? ~b : b | 0x80000000u;
}
inline float from_order_key(uint32_t key) {
  const uint32_t b = (key & 0x80000000u) ? key & 0x7fffffffu : ~key;
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// The k-th largest of keys[0, n), 1 <= k <= n; reorders keys. Radix
// selection, a byte at a time: counting loops without the branches of
// std::nth_element, which were a fifth of a 400-result filtered search.
inline uint32_t kth_largest_key(uint32_t* keys, size_t n, size_t k) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    size_t count[256] = {};
    for (size_t i = 0; i < n; ++i) ++count[(keys[i] >> shift) & 255u];
    uint32_t digit = 255;
    for (; count[digit] < k; --digit) k -= count[digit];
    size_t m = 0;  // keep the keys with that digit
    for (size_t i = 0; i < n; ++i) {
      keys[m] = keys[i];
      m += size_t(((keys[i] >> shift) & 255u) == digit);
    }
    n = m;
  }
  return keys[0];  // the survivors are all equal
}

// The k-th largest of x[0, n) (no NaN), 1 <= k <= n; `work` is scratch.
inline float kth_largest(const float* x, size_t n, size_t k, std::vector<uint32_t>& work) {
  work.resize(n);
  for (size_t i = 0; i < n; ++i) work[i] = order_key(x[i]);
  return from_order_key(kth_largest_key(work.data(), n, k));
}

class TopK {
 public:
  static constexpr size_t kSortedMax = 64;

  explicit TopK(size_t k) { reset(k); }

  // At most the k-th best score seen so far (-inf until k are kept).
  float threshold() const {
    if (!sorted_layout()) return threshold_;
    return size_ < k_ ? -std::numeric_limits<float>::infinity() : scores_[k_ - 1];
  }
  size_t capacity() const { return k_; }
  // Scores kept so far (more than capacity() until best() or sorted() trims).
  size_t size() const { return size_; }
  // After reset(), with more than kSortedMax kept: refuse scores <= floor
  // from the start (a bound expected below the k-th best, e.g. from a
  // sample), so the buffer is not filled and trimmed on the way up to it.
  // The caller checks size() >= k afterwards: a floor set too high keeps fewer.
  void set_floor(float floor) {
    if (!sorted_layout() && size_ == 0) threshold_ = floor;
  }

  void push(float score, uint32_t segment, uint32_t row) {
    if (!(score > threshold())) return;
    if (!sorted_layout()) {
      hits_[size_] = {score, segment, row};
      scores_[size_++] = score;
      if (size_ == hits_.size()) trim();
      return;
    }
    // Equal scores keep their arrival order (the new one goes after them).
    size_t at = 0;
    for (size_t i = 0; i < size_; ++i) at += size_t(scores_[i] >= score);
    const size_t last = size_ < k_ ? size_++ : k_ - 1;
    for (size_t i = last; i > at; --i) {
      scores_[i] = scores_[i - 1];
      hits_[i] = hits_[i - 1];
    }
    scores_[at] = score;
    hits_[at] = {score, segment, row};
  }

  // The best k, best first; ties broken by (segment, row).
  std::vector<Hit> sorted() const {
    std::vector<Hit> out(hits_.begin(), hits_.begin() + size_);
    if (sorted_layout()) {  // sorted already, but ties in arrival order
      std::sort(out.begin(), out.end(), Better{});
      return out;
    }
    radix_sort(out);  // the whole buffer (up to 2k), then its head
    out.resize(std::min(out.size(), k_));
    return out;
  }
  // The best k in no particular order (the same set as sorted()), for
  // candidates that are re-scored anyway.
  std::span<const Hit> best() {
    if (size_ > k_) trim();
    return {hits_.data(), size_};
  }
  void reset(size_t k) {
    k_ = std::max<size_t>(k, 1);
    size_ = 0;
    threshold_ = -std::numeric_limits<float>::infinity();
    const size_t slots = sorted_layout() ? k_ : 2 * k_;
    scores_.resize(slots);
    hits_.resize(slots);
  }

 private:
  bool sorted_layout() const { return k_ <= kSortedMax; }
  // A type, not a function pointer, so that the sorts inline it.
  struct Better {
    bool operator()(const Hit& a, const Hit& b) const {
      if (a.score != b.score) return a.score > b.score;
      if (a.segment != b.segment) return a.segment < b.segment;
      return a.row < b.row;
    }
  };
  // Hits in Better's order by stable byte passes, least significant key
  // first (row, segment, then the score's order key inverted), skipping a
  // pass whose bytes are all equal (most of segment's and row's high bytes).
  // std::nth_element and std::sort with Better's three comparisons were a
  // tenth of a 400-result store page's search, branches the CPU mispredicts.
  static void radix_sort(std::vector<Hit>& hits) {
    std::vector<Hit> moved(hits.size());
    const auto pass = [&](auto byte) {
      size_t count[256] = {};
      for (const Hit& h : hits) ++count[byte(h)];
      if (hits.empty() || count[byte(hits[0])] == hits.size()) return;
      size_t at[256];
      for (size_t d = 0, sum = 0; d < 256; sum += count[d++]) at[d] = sum;
      for (const Hit& h : hits) moved[at[byte(h)]++] = h;
      hits.swap(moved);
    };
    for (int shift = 0; shift < 32; shift += 8) pass([shift](const Hit& h) { return (h.row >> shift) & 255u; });
    for (int shift = 0; shift < 32; shift += 8) pass([shift](const Hit& h) { return (h.segment >> shift) & 255u; });
    // Best first is ascending ~key; -0 keyed as +0, which Better holds equal.
    for (int shift = 0; shift < 32; shift += 8)
      pass([shift](const Hit& h) { return (~order_key(h.score == 0 ? 0.0f : h.score) >> shift) & 255u; });
  }
  // Buffer layout: keep the best k. The k-th best score is selected by
  // kth_largest; then the hits above it are kept and the ties at it (rarely
  // more than one) in (segment, row) order.
  void trim() {
    const float kth = kth_largest(scores_.data(), size_, k_, work_);
    size_t kept = 0;
    ties_.clear();
    for (size_t i = 0; i < size_; ++i) {
      hits_[kept] = hits_[i];
      kept += size_t(hits_[i].score > kth);
      if (hits_[i].score == kth) ties_.push_back(hits_[i]);
    }
    std::sort(ties_.begin(), ties_.end(), Better{});
    for (size_t i = 0; kept < k_; ++i) hits_[kept++] = ties_[i];
    for (size_t i = 0; i < k_; ++i) scores_[i] = hits_[i].score;
    size_ = k_;
    threshold_ = kth;
  }
  size_t k_ = 1, size_ = 0;
  float threshold_ = 0;        // buffer layout only
  std::vector<float> scores_;  // sorted layout: best first; buffer: as appended
  std::vector<Hit> hits_;      // in the same order as scores_
  std::vector<uint32_t> work_;  // trim()'s keys
  std::vector<Hit> ties_;
};

}  // namespace engine::ann
