#include "common/id_map.hpp"

namespace engine {

IdMap::IdMap(const uint64_t* ids, size_t n) : n_(n) {
  unsigned bits = 4;
  while ((size_t{1} << bits) < 2 * n) ++bits;
  slots_.resize(size_t{1} << bits);
  mask_ = slots_.size() - 1;
  shift_ = 64 - bits;
  for (size_t r = 0; r < n; ++r) {
    size_t at = slot_of(ids[r]);
    while (slots_[at].row >= 0 && slots_[at].id != ids[r]) at = (at + 1) & mask_;
    if (slots_[at].row < 0) slots_[at] = {ids[r], int64_t(r)};
  }
}

void IdMap::rows(const uint64_t* ids, size_t n, int64_t* out) const {
  // Every first slot requested before any is read: the misses overlap.
  for (size_t i = 0; i < n; ++i) __builtin_prefetch(&slots_[slot_of(ids[i])]);
  for (size_t i = 0; i < n; ++i) out[i] = row(ids[i]);
}

}  // namespace engine
