#include "rerank/merge.hpp"

#include <stdexcept>
#include <string>

#include "common/prefetch.hpp"
#include "simd/dispatch.hpp"

namespace engine::rerank {

namespace {

// Rows seen so far, by open addressing: a request's few hundred rows fit in
// L1, where a bitmap of the catalogue is 125 KB at 1M items.
class RowSet {
 public:
  explicit RowSet(size_t n) {
    size_t cap = 64;
    while (cap < 2 * n) cap <<= 1;
    slots_.assign(cap, -1);
    mask_ = cap - 1;
  }
  bool insert(int64_t row) {  // false if the row was in the set already
    size_t at = size_t((uint64_t(row) * 0x9E3779B97F4A7C15ull) >> 32) & mask_;
    while (slots_[at] >= 0) {
      if (slots_[at] == row) return false;
      at = (at + 1) & mask_;
    }
    slots_[at] = row;
    return true;
  }

 private:
  std::vector<int64_t> slots_;
  size_t mask_ = 0;
};

}  // namespace

Merged merge_candidates(const std::vector<Source>& sources, const int64_t* recent, size_t n_recent,
                        size_t n_items, const Scoring& scoring) {
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
    if (!sources[s].scores && !(scoring.vectors && scoring.query))
      throw std::invalid_argument("source " + std::to_string(s) + ": no scores and no vectors to compute them");
    total += sources[s].n;
  }
  Merged out;
  out.rows.reserve(total);
  out.source.reserve(total);
  out.score.reserve(total);
  RowSet seen(total + n_recent);
  for (size_t i = 0; i < n_recent; ++i) seen.insert(recent[i]);
  std::vector<uint32_t> to_score;  // positions in out of rows whose score is computed
  for (const Source& s : sources)
    for (size_t i = 0; i < s.n; ++i)
      if (seen.insert(s.rows[i])) {
        if (!s.scores) to_score.push_back(uint32_t(out.rows.size()));
        out.rows.push_back(s.rows[i]);
        out.source.push_back(s.code);
        out.score.push_back(s.scores ? s.scores[i] : 0.0f);
      }
  if (!to_score.empty()) {
    // The ANN search's own kernel, so a row scores the same from any source.
    std::vector<uint32_t> idx, zero;  // vector rows to score; positions in to_score of slot -1
    idx.reserve(to_score.size());
    for (size_t j = 0; j < to_score.size(); ++j) {
      const int64_t row = out.rows[to_score[j]];
      const int64_t slot = scoring.slots ? scoring.slots[row] : row;
      if (slot < -1 || slot >= int64_t(scoring.n_vectors))
        throw std::out_of_range("vector_rows: item " + std::to_string(row) + " names row " + std::to_string(slot) +
                                " of " + std::to_string(scoring.n_vectors) + " vectors");
      if (slot < 0) {
        zero.push_back(uint32_t(j));
        idx.push_back(0);  // scored from the zero vector below
      } else {
        idx.push_back(uint32_t(slot));
      }
    }
    std::vector<float> dots(idx.size());
    const auto& kernels = simd::active();
    prefetch_listed(scoring.vectors, scoring.dim * sizeof(float), idx.data(), idx.size());
    kernels.dot_f32(scoring.query, scoring.vectors, idx.data(), idx.size(), scoring.dim, dots.data());
    if (!zero.empty()) {
      const std::vector<float> zeros(scoring.dim, 0.0f);
      const uint32_t first = 0;
      float dot = 0.0f;
      kernels.dot_f32(scoring.query, zeros.data(), &first, 1, scoring.dim, &dot);
      for (uint32_t j : zero) dots[j] = dot;
    }
    for (size_t j = 0; j < idx.size(); ++j) out.score[to_score[j]] = dots[j];
  }
  return out;
}

}  // namespace engine::rerank
