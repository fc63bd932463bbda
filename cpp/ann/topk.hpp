// Keeps the k highest scores seen so far: a min-heap whose root is the
// current threshold, so most candidates are rejected by one comparison.
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
  explicit TopK(size_t k) : k_(k) { heap_.reserve(k); }

  // Score a candidate must beat to enter (-inf while not full).
  float threshold() const {
    return heap_.size() < k_ ? -std::numeric_limits<float>::infinity() : heap_.front().score;
  }
  bool full() const { return heap_.size() >= k_; }
  size_t capacity() const { return k_; }
  size_t size() const { return heap_.size(); }

  void push(float score, uint32_t segment, uint32_t row) {
    if (heap_.size() < k_) {
      heap_.push_back({score, segment, row});
      std::push_heap(heap_.begin(), heap_.end(), worse_first);
    } else if (score > heap_.front().score) {
      std::pop_heap(heap_.begin(), heap_.end(), worse_first);
      heap_.back() = {score, segment, row};
      std::push_heap(heap_.begin(), heap_.end(), worse_first);
    }
  }

  // Best first; ties broken by (segment, row) so results are deterministic.
  std::vector<Hit> sorted() const {
    std::vector<Hit> out(heap_);
    std::sort(out.begin(), out.end(), [](const Hit& a, const Hit& b) {
      if (a.score != b.score) return a.score > b.score;
      if (a.segment != b.segment) return a.segment < b.segment;
      return a.row < b.row;
    });
    return out;
  }
  void clear() { heap_.clear(); }
  void reset(size_t k) {
    k_ = k;
    heap_.clear();
    heap_.reserve(k);
  }

 private:
  static bool worse_first(const Hit& a, const Hit& b) { return a.score > b.score; }
  size_t k_;
  std::vector<Hit> heap_;
};

}  // namespace engine::ann
