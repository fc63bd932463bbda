// Software prefetch of scattered rows: rows far apart in a large array are
// requested together, so their cache misses overlap instead of each load
// waiting for the one before.
#pragma once
#include <cstddef>
#include <cstdint>

namespace engine {

// Rows rows[0, n) of row_bytes each from base.
inline void prefetch_listed(const void* base, size_t row_bytes, const uint32_t* rows, size_t n) {
  const char* at = static_cast<const char*>(base);
  for (size_t i = 0; i < n; ++i)
    for (size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(at + size_t{rows[i]} * row_bytes + off);
}

}  // namespace engine
