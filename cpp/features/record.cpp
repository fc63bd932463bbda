#include "features/record.hpp"

namespace engine::features {

void KeyIndex::build(const void* keys, int64_t n) {
  int bits = 4;
  while ((int64_t{1} << bits) < 2 * n) ++bits;
  const size_t capacity = size_t{1} << bits;
  table_.assign(capacity, -1);
  mask_ = capacity - 1;
  shift_ = 64 - bits;
  for (int64_t pos = 0; pos < n; ++pos) {
    const uint64_t key = load_u64(keys, pos);
    for (uint64_t i = slot_of(key);; i = (i + 1) & mask_) {
      int64_t& slot = table_[i];
      if (slot < 0 || load_u64(keys, slot) == key) {
        slot = pos;  // a repeated key: the last one wins
        break;
      }
    }
  }
}

}  // namespace engine::features
