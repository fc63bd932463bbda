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
#include <functional>
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
  static constexpr size_t kSortedMax = 64;

  explicit TopK(size_t k) { reset(k); }

  // At most the k-th best score seen so far (-inf until k are kept).
  float threshold() const {
    if (!sorted_layout()) return threshold_;
    return size_ < k_ ? -std::numeric_limits<float>::infinity() : scores_[k_ - 1];
  }
  size_t capacity() const { return k_; }

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
    std::sort(out.begin(), out.end(), better);
    if (out.size() > k_) out.resize(k_);
    return out;
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
  static bool better(const Hit& a, const Hit& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.segment != b.segment) return a.segment < b.segment;
    return a.row < b.row;
  }
  // Buffer layout: keep the best k. The k-th best score is selected among
  // plain floats, then the hits above it are kept and the ties at it (rarely
  // more than one) in (segment, row) order.
  void trim() {
    work_.assign(scores_.begin(), scores_.begin() + size_);
    std::nth_element(work_.begin(), work_.begin() + (k_ - 1), work_.end(), std::greater<float>());
    const float kth = work_[k_ - 1];
    size_t kept = 0;
    ties_.clear();
    for (size_t i = 0; i < size_; ++i) {
      if (hits_[i].score > kth) hits_[kept++] = hits_[i];
      else if (hits_[i].score == kth) ties_.push_back(hits_[i]);
    }
    std::sort(ties_.begin(), ties_.end(), better);
    for (size_t i = 0; kept < k_; ++i) hits_[kept++] = ties_[i];
    for (size_t i = 0; i < k_; ++i) scores_[i] = hits_[i].score;
    size_ = k_;
    threshold_ = kth;
  }

  size_t k_ = 1, size_ = 0;
  float threshold_ = 0;        // buffer layout only
  std::vector<float> scores_;  // sorted layout: best first; buffer: as appended
  std::vector<Hit> hits_;      // in the same order as scores_
  std::vector<float> work_;    // trim()'s copies
  std::vector<Hit> ties_;
};

}  // namespace engine::ann
