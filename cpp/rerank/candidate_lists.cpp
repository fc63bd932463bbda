#include "rerank/candidate_lists.hpp"

#include <algorithm>

namespace engine::rerank {

namespace {

bool passes(const std::vector<RowCheck>& checks, int64_t row) {
  for (const RowCheck& c : checks) {
    const int64_t v = c.is_bool ? int64_t(static_cast<const uint8_t*>(c.column)[row] != 0)
                                : static_cast<const int64_t*>(c.column)[row];
    if (std::find(c.values.begin(), c.values.end(), v) == c.values.end()) return false;
  }
  return true;
}

}  // namespace

std::vector<int64_t> list_rows(const int64_t* all, size_t n_all, const ScopedLists* scope,
                               std::vector<int64_t> wanted, const std::vector<RowCheck>& checks, size_t n) {
  std::vector<int64_t> out;
  if (n == 0) return out;
  // Rows are taken from the lists in order; with checks, only the list's
  // head is examined, so that a rare condition cannot walk a long list.
  const size_t examine = checks.empty() ? n : std::max<size_t>(4 * n, 256);
  size_t seen = 0;
  auto take = [&](const int64_t* rows, size_t count) {
    for (size_t i = 0; i < count && seen < examine && out.size() < n; ++i, ++seen)
      if (checks.empty() || passes(checks, rows[i])) out.push_back(rows[i]);
  };
  if (!scope) {
    take(all, n_all);
    return out;
  }
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());  // a value listed twice: one list
  for (int64_t key : wanted) {
    const int64_t* at = std::lower_bound(scope->keys, scope->keys + scope->n_keys, key);
    if (at == scope->keys + scope->n_keys || *at != key) continue;
    const size_t i = size_t(at - scope->keys);
    take(scope->rows + scope->offsets[i], size_t(scope->offsets[i + 1] - scope->offsets[i]));
  }
  return out;
}

}  // namespace engine::rerank
