// A feature spec compiled for the assembler.
//
// Each feature is computed where its inputs first meet:
//   item side     features of item columns only (numeric, bucket, hashed,
//                 item-only crosses and matches): once per item, when the
//                 assembler is built;
//   request side  features of request fields only: once per request online,
//                 once per logged row offline;
//   row           features of both (crosses and matches mixing item and
//                 request, lookups, dot): once per (request, item) row.
// Both sides run one function, derive() (row.hpp), over a *raw record* of
// their inputs, and produce a *derived record*: the side's finished feature
// values (floats) plus what the row ops still need from it (category codes
// with their validity, and each mixed cross's part of the hash).
//
// Raw record (64-bit words): [validity masks][slots]; a slot holds a double
// (NaN = missing) or a category code (missing when its validity bit is clear).
// An input read both ways gets one slot of each kind.
// Derived record: words [code masks][codes][cross parts], floats [features].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace engine::features {

enum class Kind : uint8_t { numeric, bucket, hashed, cross, dot, lookup, match };
enum class Origin : uint8_t { item = 0, request = 1 };

const char* kind_name(Kind kind);

struct Source {
  Origin origin = Origin::item;
  std::string name;  // the item column or request field, without its prefix
};

// One feature as the Python spec describes it (engine/features/spec.py).
struct FeatureDef {
  Kind kind = Kind::numeric;
  std::string name;
  // numeric, bucket, hashed: 1; cross: 2+; match: 2; lookup: {request map
  // field, item key column}; dot: none.
  std::vector<Source> sources;
  uint64_t buckets = 0;             // hashed, cross
  std::vector<double> boundaries;   // bucket: strictly increasing, finite
  float fallback = 0.0f;            // numeric, bucket, lookup: the value when missing
};

// An item column or request field the spec reads, and how.
struct Input {
  std::string name;
  int32_t number_slot = -1;  // numeric, bucket
  int32_t code_slot = -1;    // hashed, cross, match, lookup key
  int32_t map_index = -1;    // request only: lookup's {key: value} map
  // The first feature reading it each way, for error messages ("feature 'x' (bucket)").
  std::string number_user, code_user, map_user;
};

struct RecordLayout {
  uint32_t masks = 0;
  uint32_t slots = 0;
  uint32_t width() const { return masks + slots; }
};

// A raw slot: its word (masks included), its validity bit, and for a cross
// source its position in the cross.
struct RawRef {
  uint32_t word = 0;
  uint32_t slot = 0;
  uint32_t position = 0;
};

// A feature of one side's inputs alone; refs / boundaries index SidePlan's pools.
struct SideFeature {
  Kind kind = Kind::numeric;
  uint32_t out = 0;  // index in the side's floats
  uint32_t first = 0, count = 0;
  float fallback = 0.0f;
  uint64_t buckets = 0;
  uint32_t first_boundary = 0, n_boundaries = 0;
};
struct PartOp { uint32_t word; uint32_t first, count; };  // XOR of the refs' cross terms
struct CodeOp { uint32_t code; RawRef from; };            // a code the row ops read
struct FloatRun { uint32_t from, out, count; };           // side floats -> output columns

struct SidePlan {
  std::vector<Input> inputs;  // item columns or request fields
  RecordLayout raw;
  uint32_t n_codes = 0, n_parts = 0, n_floats = 0;
  std::vector<SideFeature> features;
  std::vector<PartOp> parts;
  std::vector<CodeOp> codes;
  std::vector<RawRef> refs;
  std::vector<double> boundaries;
  std::vector<FloatRun> runs;

  uint32_t code_masks() const { return (n_codes + 63) / 64; }
  uint32_t code_word(uint32_t code) const { return code_masks() + code; }
  uint32_t part_word(uint32_t part) const { return code_masks() + n_codes + part; }
  uint32_t words() const { return code_masks() + n_codes + n_parts; }
};

// Row ops read derived records: codes by (validity bit, word), parts by word.
struct CodeRef { uint32_t code, word; };
struct RowCross { uint32_t item_word, request_word, out; uint64_t buckets; };
struct RowMatch { CodeRef item, request; uint32_t out; };
struct RowLookup { uint32_t map; CodeRef key; uint32_t out; float fallback; };

struct Plan {
  std::vector<std::string> names;  // output column order
  SidePlan item, request;
  uint32_t n_maps = 0;
  bool has_dot = false;
  std::string dot_user;

  std::vector<RowCross> cross;
  std::vector<RowMatch> match;
  std::vector<RowLookup> lookup;
  std::vector<uint32_t> dot;  // output columns

  size_t n_features() const { return names.size(); }
  const std::vector<Input>& item_columns() const { return item.inputs; }
  const std::vector<Input>& request_fields() const { return request.inputs; }

  // Checks the definitions again (the Python spec validated them first) and
  // lays out both sides. Bad definitions -> engine::ValueError.
  static Plan build(const std::vector<FeatureDef>& defs);
};

}  // namespace engine::features
