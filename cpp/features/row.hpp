// The two routines every feature value comes from (plan.hpp says which runs
// where). derive() turns one side's raw record into its derived record: at
// construction for each item, and for the request once per call online or
// once per logged row offline. assemble_rows() then combines, for each row,
// one item's and one request's derived records into a feature row: online
// every row points at the same request, offline each at its own. Nothing
// else computes a feature value, which is what makes online and offline rows
// equal byte for byte.
#pragma once
#include <cstdint>

#include "features/plan.hpp"
#include "features/record.hpp"

namespace engine::features {

// One side's derived record: plan words (codes, parts) and finished floats.
struct SideRecord {
  const uint64_t* words = nullptr;
  const float* floats = nullptr;
};

struct RowInput {
  SideRecord item, request;
  const MapView* maps = nullptr;          // plan.n_maps, the request's lookup maps
  const float* user_vector = nullptr;     // null: missing (dot -> 0)
  const float* item_vector = nullptr;     // the item's embedding (plan.has_dot)
};

// The values, as float32:
//   numeric  float32(value); NaN / null / missing -> default
//   bucket   count of boundaries <= value (np.searchsorted side="right"); missing -> default
//   hashed   reduce_to(mix64(code), buckets)                       (hash.hpp)
//   cross    reduce_to(mix64(XOR_i cross_term(code_i, i)), buckets)
//   match    1 when both codes are present and equal, else 0
//   lookup   the request map's value for the item's key; absent / null / NaN -> default
//   dot      sum_j user[j] * item[j] in one fixed order; missing user vector -> 0
void derive(const SidePlan& side, const uint64_t* raw, uint64_t* words, float* floats);

// Writes rows[i]'s plan.n_features() floats, in spec order, to out + i *
// n_features, for i < n. Each op runs over all n rows before the next one:
// the rows' hash and lookup chains are independent, so the CPU overlaps them
// (per-row op loops left it waiting on one chain at a time). Callers pass
// blocks of kRowBlock rows or fewer.
constexpr size_t kRowBlock = 64;
void assemble_rows(const Plan& plan, int64_t dim, const RowInput* rows, size_t n, float* out);

// The dot product's order, the same on every path and build: lane k = j % 8
// accumulates its float32 products in increasing j (multiply, then add: no
// FMA), then ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).

}  // namespace engine::features
