// Keeps the k highest scores seen so far, sorted best first, so the k-th
// (the threshold a candidate must beat) is one load and most candidates are
// rejected by one comparison. An accepted candidate is inserted by counting
// the better scores (a loop that vectorises) and shifting the worse ones:
// for k of 10-50 that is cheaper than a heap's sifts, whose every level is a
// branch the CPU mispredicts.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace engine::ann {

struct Hit {
  float score;
  uint32_t segment;
  uint32_t row;
};

class TopK {
 public:
  explicit TopK(size_t k) { reset(k); }

  // Score a candidate must beat to enter (-inf while fewer than k are kept).
  float threshold() const {
    return size_ < k_ ? -std::numeric_limits<float>::infinity() : scores_[k_ - 1];
  }
  size_t capacity() const { return k_; }

  void push(float score, uint32_t segment, uint32_t row) {
    if (!(score > threshold())) return;
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

  // The kept hits, best first; ties broken by (segment, row) so the result
  // is deterministic.
  std::vector<Hit> sorted() const {
    std::vector<Hit> out(hits_.begin(), hits_.begin() + size_);
    std::sort(out.begin(), out.end(), [](const Hit& a, const Hit& b) {
      if (a.score != b.score) return a.score > b.score;
      if (a.segment != b.segment) return a.segment < b.segment;
      return a.row < b.row;
    });
    return out;
  }
  void reset(size_t k) {
    k_ = std::max<size_t>(k, 1);
    size_ = 0;
    scores_.resize(k_);
    hits_.resize(k_);
  }

 private:
  size_t k_ = 1, size_ = 0;
  std::vector<float> scores_;  // [0, size_) best first
  std::vector<Hit> hits_;      // in the same order
};

}  // namespace engine::ann
