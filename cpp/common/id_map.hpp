// Item or user id -> row, for the request path's lookups (a shopper, the
// items they saw recently). Open addressing over a table of at least twice
// the ids, so a lookup is one or two cache lines: a binary search over a
// sorted million ids was ~20 dependent misses once the heads had evicted
// it from cache (10-20 us a request in numpy). Immutable after build.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/huge_pages.hpp"

namespace engine {

class IdMap {
 public:
  // ids[r] is row r's id; an id given twice maps to its first row.
  IdMap(const uint64_t* ids, size_t n);

  int64_t row(uint64_t id) const {  // -1: unknown
    for (size_t at = slot_of(id);; at = (at + 1) & mask_) {
      const Slot& s = slots_[at];
      if (s.row < 0 || s.id == id) return s.row;
    }
  }
  void rows(const uint64_t* ids, size_t n, int64_t* out) const;
  size_t size() const { return n_; }

 private:
  struct Slot {
    uint64_t id = 0;
    int64_t row = -1;  // -1: empty
  };
  size_t slot_of(uint64_t id) const { return size_t((id * 0x9E3779B97F4A7C15ull) >> shift_); }

  std::vector<Slot, HugePageAllocator<Slot>> slots_;
  size_t mask_ = 0, n_ = 0;
  unsigned shift_ = 0;
};

}  // namespace engine
