// A request's candidate set: its sources' item rows in order (ANN, then
// popularity, then new items), each row kept where it first appears, the
// rows the shopper saw recently dropped. One pass over a small per-thread
// hash set (a catalogue-wide bitmap missed cache on nearly every row right
// after the heads had run); in numpy it took about twenty calls (35-45 us
// of a request).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace engine::rerank {

struct Source {
  const int64_t* rows = nullptr;
  // The source's retrieval score per row; null: the inner product of the
  // row's vector and the query, computed for the kept rows only.
  const float* scores = nullptr;
  size_t n = 0;
  int8_t code = 0;                // recorded per kept row
};

struct Merged {
  std::vector<int64_t> rows;
  std::vector<int8_t> source;
  std::vector<float> score;
};

// Item vectors (row-major) and the query their inner products are taken
// with, for sources without scores; null when none. Row i is item i's
// vector, or with `slots` (one per item) row slots[i], and slot -1 a zero
// vector (as features::Assembler reads them).
struct Scoring {
  const float* vectors = nullptr;
  const float* query = nullptr;
  size_t dim = 0;
  const int32_t* slots = nullptr;
  size_t n_vectors = 0;  // rows of vectors, which slots must stay below
};

// Throws std::out_of_range naming the source (or "recent") of a row outside
// [0, n_items) or a slot outside [-1, n_vectors), and std::invalid_argument for a source without scores and no
// Scoring, before anything is marked.
Merged merge_candidates(const std::vector<Source>& sources, const int64_t* recent, size_t n_recent,
                        size_t n_items, const Scoring& scoring = {});

}  // namespace engine::rerank
