// The rows a popularity or new-item list gives one request
// (engine/ranking/popularity.py holds the lists and documents the rules):
// the list of the request's scope (a merchant's, categories', or the
// overall one), then the request's other filter conditions checked on its
// head. Native because the numpy version was a dozen calls a list, ~40 us
// a request on caches the heads had just flushed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace engine::rerank {

// One scope's lists in CSR form: rows[offsets[i], offsets[i + 1]) for keys[i] (ascending).
struct ScopedLists {
  const int64_t* keys = nullptr;
  size_t n_keys = 0;
  const int64_t* offsets = nullptr;
  const int64_t* rows = nullptr;
};

// Keeps a row when column[row] is one of values (bool columns read as 0 / 1).
struct RowCheck {
  const void* column = nullptr;
  bool is_bool = false;
  std::vector<int64_t> values;
};

// Up to n rows: the lists of `wanted` keys in key order (scope given) or
// `all` (no scope); with checks, only the rows passing every check among
// the first max(4 n, 256) of those.
std::vector<int64_t> list_rows(const int64_t* all, size_t n_all, const ScopedLists* scope,
                               std::vector<int64_t> wanted, const std::vector<RowCheck>& checks, size_t n);

}  // namespace engine::rerank
