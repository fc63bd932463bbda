// A request's candidate set: its sources' item rows in order (ANN, then
// popularity, then new items), each row kept where it first appears, the
// rows the shopper saw recently dropped. One pass over a per-thread bitmap
// of the catalogue, cleared again before returning; in numpy it took about
// twenty calls (35-45 us of a request).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace engine::rerank {

struct Source {
  const int64_t* rows = nullptr;
  const float* scores = nullptr;  // the source's retrieval score per row
  size_t n = 0;
  int8_t code = 0;                // recorded per kept row
};

struct Merged {
  std::vector<int64_t> rows;
  std::vector<int8_t> source;
  std::vector<float> score;
};

// Throws std::out_of_range naming the source (or "recent") of a row outside
// [0, n_items), before anything is marked.
Merged merge_candidates(const std::vector<Source>& sources, const int64_t* recent, size_t n_recent,
                        size_t n_items);

}  // namespace engine::rerank
