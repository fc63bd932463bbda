#include "rerank/merge.hpp"

#include <stdexcept>
#include <string>

namespace engine::rerank {

Merged merge_candidates(const std::vector<Source>& sources, const int64_t* recent, size_t n_recent,
                        size_t n_items) {
  auto check = [&](const int64_t* rows, size_t n, const std::string& what) {
    for (size_t i = 0; i < n; ++i)
      if (rows[i] < 0 || uint64_t(rows[i]) >= n_items)
        throw std::out_of_range(what + ": row " + std::to_string(rows[i]) + " is outside the catalogue's " +
                                std::to_string(n_items) + " items");
  };
  check(recent, n_recent, "recent");
  size_t total = 0;
  for (size_t s = 0; s < sources.size(); ++s) {
    check(sources[s].rows, sources[s].n, "source " + std::to_string(s));
    total += sources[s].n;
  }
  // Everything that can throw happens before the first mark.
  Merged out;
  out.rows.reserve(total);
  out.source.reserve(total);
  out.score.reserve(total);
  thread_local std::vector<uint64_t> seen;  // all clear between calls
  if (seen.size() < (n_items + 63) / 64) seen.assign((n_items + 63) / 64, 0);
  auto mark = [&](int64_t row) {  // true if the row was marked already
    uint64_t& word = seen[uint64_t(row) >> 6];
    const uint64_t bit = uint64_t{1} << (row & 63);
    const bool was = word & bit;
    word |= bit;
    return was;
  };
  for (size_t i = 0; i < n_recent; ++i) mark(recent[i]);
  for (const Source& s : sources)
    for (size_t i = 0; i < s.n; ++i)
      if (!mark(s.rows[i])) {
        out.rows.push_back(s.rows[i]);
        out.source.push_back(s.code);
        out.score.push_back(s.scores[i]);
      }
  // Every marked row is recent or kept.
  for (size_t i = 0; i < n_recent; ++i) seen[uint64_t(recent[i]) >> 6] = 0;
  for (int64_t row : out.rows) seen[uint64_t(row) >> 6] = 0;
  return out;
}

}  // namespace engine::rerank
