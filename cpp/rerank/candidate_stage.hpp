// A request's candidates in one native call: the ANN search (when the
// request has a user vector), the popular and new-item lists of its scope,
// and their merge (merge.hpp). Done as three Python-level calls with the
// glue between them it cost ~25 us more per request than the native work.
//
// Results equal the step-by-step path (tests/pipeline_support.py
// candidates_step_by_step) bit for bit: the same search, list_rows and merge
// in the same order. Immutable after construction; any number of threads may call run().
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ann/index.hpp"
#include "rerank/candidate_lists.hpp"
#include "rerank/merge.hpp"

namespace engine::rerank {

// Source codes recorded per candidate (engine/ranking/ranker.py's SOURCE_*).
constexpr int8_t kSourceAnn = 0, kSourcePopular = 1, kSourceNew = 2;

// One source's lists (popularity.py): the overall list and the CSR lists by
// merchant and by category, whose keys double as the request's scope.
struct SourceLists {
  const int64_t* all = nullptr;
  size_t n_all = 0;
  ScopedLists by_merchant, by_category;
};

// A filterable item attribute: its name, its column in the index, and one
// value per catalogue row (int64, or bool) for the lists' checks.
struct Attribute {
  std::string name;
  int index_column = -1;
  const void* values = nullptr;
  bool is_bool = false;
};

// A request's filter: attribute (index into CandidateStage's attributes) and values.
using Filter = std::pair<size_t, std::vector<int64_t>>;

struct CandidateRequest {
  const float* user_vector = nullptr;  // dim floats, or null: the cold-start path
  size_t n_ann = 0, n_popular = 0, n_new = 0;
  uint32_t nprobe = 0;                 // 0: the index's default
  const std::vector<Filter>* filters = nullptr;
  const int64_t* recent = nullptr;     // rows dropped from the candidates
  size_t n_recent = 0;
};

class CandidateStage {
 public:
  // merchant / category: positions in attributes of merchant_id and
  // category_id (the lists' scopes). scoring: the vectors the lists' rows
  // are scored with (its query is each request's user vector).
  CandidateStage(const ann::Index& index, SourceLists popular, SourceLists fresh,
                 std::vector<Attribute> attributes, size_t merchant, size_t category, Scoring scoring,
                 size_t n_items);

  Merged run(const CandidateRequest& request) const;

 private:
  std::vector<int64_t> list(const SourceLists& lists, const std::vector<Filter>& filters, size_t n) const;

  const ann::Index& index_;
  SourceLists popular_, fresh_;
  std::vector<Attribute> attributes_;
  size_t merchant_, category_;
  Scoring scoring_;
  size_t n_items_;
};

}  // namespace engine::rerank
