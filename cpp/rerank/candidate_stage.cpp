#include "rerank/candidate_stage.hpp"

#include <algorithm>
#include <stdexcept>

#include "ann/filter.hpp"

namespace engine::rerank {

CandidateStage::CandidateStage(const ann::Index& index, SourceLists popular, SourceLists fresh,
                               std::vector<Attribute> attributes, size_t merchant, size_t category,
                               Scoring scoring, size_t n_items)
    : index_(index),
      popular_(popular),
      fresh_(fresh),
      attributes_(std::move(attributes)),
      merchant_(merchant),
      category_(category),
      scoring_(scoring),
      n_items_(n_items) {}

// popularity.py's CandidateLists.rows: the scope is the merchant filter,
// else the category filter, else the overall list; the other filters are
// checks on the list's head.
std::vector<int64_t> CandidateStage::list(const SourceLists& lists, const std::vector<Filter>& filters,
                                          size_t n) const {
  if (n == 0) return {};
  const Filter* scope = nullptr;
  for (size_t wanted : {merchant_, category_}) {
    for (const Filter& f : filters)
      if (f.first == wanted) {
        scope = &f;
        break;
      }
    if (scope) break;
  }
  std::vector<RowCheck> checks;
  for (const Filter& f : filters)
    if (&f != scope) {
      const Attribute& a = attributes_[f.first];
      checks.push_back({a.values, a.is_bool, f.second});
    }
  if (scope == nullptr) return list_rows(lists.all, lists.n_all, nullptr, {}, checks, n);
  const ScopedLists& scoped = scope->first == merchant_ ? lists.by_merchant : lists.by_category;
  return list_rows(nullptr, 0, &scoped, scope->second, checks, n);
}

Merged CandidateStage::run(const CandidateRequest& r) const {
  static const std::vector<Filter> none;
  const std::vector<Filter>& filters = r.filters ? *r.filters : none;
  std::vector<Source> sources;
  std::vector<int64_t> ann_rows;
  std::vector<float> ann_scores;
  size_t n_popular = r.n_popular;
  if (r.user_vector != nullptr && r.n_ann > 0) {
    ann::FilterSpec spec;
    for (const Filter& f : filters) {
      const Attribute& a = attributes_[f.first];
      if (a.index_column < 0) throw std::invalid_argument("filters: the index has no attribute '" + a.name + "'");
      ann::Condition c;
      c.column = uint32_t(a.index_column);
      c.values = f.second;
      c.prepare();
      spec.conditions.push_back(std::move(c));
    }
    std::vector<int64_t> ids(r.n_ann);
    std::vector<float> scores(r.n_ann);
    index_.search({r.user_vector, 1, r.n_ann, r.nprobe, false, 1}, spec, ids.data(), scores.data());
    for (size_t i = 0; i < r.n_ann; ++i)
      if (ids[i] >= 0) {  // -1 pads when fewer rows match
        ann_rows.push_back(ids[i]);
        ann_scores.push_back(scores[i]);
      }
    sources.push_back({ann_rows.data(), ann_scores.data(), ann_rows.size(), kSourceAnn});
  } else {
    n_popular += r.n_ann;  // a cold start fills the ANN share from popularity
  }
  const std::vector<int64_t> popular = list(popular_, filters, n_popular);
  const std::vector<int64_t> fresh = list(fresh_, filters, r.n_new);
  // Without a user vector, a list's rows score their rank order in (0, 1]
  // (computed as numpy's float64 1 - i / n, then rounded to float32).
  std::vector<float> rank_popular, rank_fresh;
  const auto rank_scores = [](const std::vector<int64_t>& rows, std::vector<float>& out) {
    const double n = double(std::max<size_t>(rows.size(), 1));
    out.reserve(std::max<size_t>(rows.size(), 1));  // data() is not null for an empty list either
    for (size_t i = 0; i < rows.size(); ++i) out.push_back(float(1.0 - double(i) / n));
    return out.data();
  };
  const bool scored = r.user_vector != nullptr;
  sources.push_back({popular.data(), scored ? nullptr : rank_scores(popular, rank_popular), popular.size(),
                     kSourcePopular});
  sources.push_back({fresh.data(), scored ? nullptr : rank_scores(fresh, rank_fresh), fresh.size(), kSourceNew});
  Scoring scoring = scoring_;
  scoring.query = r.user_vector;
  return merge_candidates(sources, r.recent, r.n_recent, n_items_, scored ? scoring : Scoring{});
}

}  // namespace engine::rerank
