#include "features/plan.hpp"

#include <cmath>
#include <set>

#include "common/errors.hpp"

namespace engine::features {

namespace {

// Bucket ids are written as float32: beyond 2**24 they would not be exact.
constexpr uint64_t kMaxBuckets = uint64_t{1} << 24;

std::string user_of(const FeatureDef& def) {
  return "feature '" + def.name + "' (" + kind_name(def.kind) + ")";
}

enum class Role { number, code, map };

// Pass 1: the inputs of one side and their raw slots.
class InputSet {
 public:
  void use(const std::string& name, Role role, const FeatureDef& def) {
    Input& in = find_or_add(name);
    if (role == Role::map) {
      if (in.map_index < 0) {
        in.map_index = int32_t(maps_++);
        in.map_user = user_of(def);
      }
    } else if (role == Role::number) {
      if (in.number_slot < 0) {
        in.number_slot = int32_t(slots_++);
        in.number_user = user_of(def);
      }
    } else if (in.code_slot < 0) {
      in.code_slot = int32_t(slots_++);
      in.code_user = user_of(def);
    }
    if (in.map_index >= 0 && (in.number_slot >= 0 || in.code_slot >= 0)) {
      const std::string& scalar = in.number_slot >= 0 ? in.number_user : in.code_user;
      throw ValueError("request field '" + name + "' is a map for " + in.map_user +
                       " and a single value for " + scalar);
    }
  }

  std::vector<Input> inputs;
  uint32_t slots() const { return slots_; }
  uint32_t maps() const { return maps_; }

 private:
  Input& find_or_add(const std::string& name) {
    for (auto& in : inputs)
      if (in.name == name) return in;
    inputs.push_back(Input{});
    inputs.back().name = name;
    return inputs.back();
  }

  uint32_t slots_ = 0;
  uint32_t maps_ = 0;
};

void expect_sources(const FeatureDef& def, size_t count) {
  if (def.sources.size() != count)
    throw ValueError(user_of(def) + ": expected " + std::to_string(count) + " source(s), got " +
                     std::to_string(def.sources.size()));
}

void check_buckets(const FeatureDef& def) {
  if (def.buckets < 1 || def.buckets > kMaxBuckets)
    throw ValueError(user_of(def) + ": buckets must be in [1, 2**24], got " +
                     std::to_string(def.buckets));
}

void check_fallback(const FeatureDef& def) {
  if (!std::isfinite(def.fallback))
    throw ValueError(user_of(def) + ": the default must be finite");
}

// Pass 1 for one feature: validate it and register its inputs.
void register_inputs(const FeatureDef& def, InputSet& items, InputSet& request, Plan& plan) {
  static const std::set<std::string> reserved = {"user_vector", "item_row", "item_id"};
  for (const Source& s : def.sources) {
    if (s.name.empty()) throw ValueError(user_of(def) + ": a source has an empty name");
    if (s.origin == Origin::request && reserved.count(s.name))
      throw ValueError(user_of(def) + ": 'request." + s.name +
                       "' is reserved (user_vector is read by dot; item_row and item_id name the "
                       "item in offline tables)");
  }
  auto use = [&](const Source& s, Role role) {
    (s.origin == Origin::item ? items : request).use(s.name, role, def);
  };
  switch (def.kind) {
    case Kind::numeric:
    case Kind::bucket:
      expect_sources(def, 1);
      check_fallback(def);
      use(def.sources[0], Role::number);
      break;
    case Kind::hashed:
      expect_sources(def, 1);
      check_buckets(def);
      use(def.sources[0], Role::code);
      break;
    case Kind::cross:
      if (def.sources.size() < 2) throw ValueError(user_of(def) + ": a cross needs at least 2 sources");
      check_buckets(def);
      for (const Source& s : def.sources) use(s, Role::code);
      break;
    case Kind::match:
      expect_sources(def, 2);
      for (const Source& s : def.sources) use(s, Role::code);
      break;
    case Kind::lookup:
      expect_sources(def, 2);
      check_fallback(def);
      if (def.sources[0].origin != Origin::request || def.sources[1].origin != Origin::item)
        throw ValueError(user_of(def) + ": expected a request map field and an item key column");
      use(def.sources[0], Role::map);
      use(def.sources[1], Role::code);
      break;
    case Kind::dot:
      expect_sources(def, 0);
      if (!plan.has_dot) plan.dot_user = user_of(def);
      plan.has_dot = true;
      break;
  }
  if (def.kind == Kind::bucket) {
    if (def.boundaries.empty()) throw ValueError(user_of(def) + ": boundaries are empty");
    for (size_t i = 0; i < def.boundaries.size(); ++i) {
      if (!std::isfinite(def.boundaries[i]))
        throw ValueError(user_of(def) + ": boundaries must be finite");
      if (i > 0 && !(def.boundaries[i - 1] < def.boundaries[i]))
        throw ValueError(user_of(def) + ": boundaries must be strictly increasing");
    }
  }
}

const Input& find_input(const SidePlan& side, const std::string& name) {
  for (const auto& in : side.inputs)
    if (in.name == name) return in;
  throw ValueError("internal: input '" + name + "' not laid out");
}

RawRef raw_ref(const SidePlan& side, const Source& s, Role role, uint32_t position) {
  const Input& in = find_input(side, s.name);
  const uint32_t slot = uint32_t(role == Role::number ? in.number_slot : in.code_slot);
  return RawRef{side.raw.masks + slot, slot, position};
}

// The derived code of a raw code slot, shared by every row op that reads it.
uint32_t code_index(SidePlan& side, const RawRef& from) {
  for (const CodeOp& op : side.codes)
    if (op.from.slot == from.slot) return op.code;
  side.codes.push_back({side.n_codes, RawRef{from.word, from.slot, 0}});
  return side.n_codes++;
}

bool single_origin(const FeatureDef& def, Origin* origin) {
  for (const Source& s : def.sources)
    if (s.origin != def.sources[0].origin) return false;
  *origin = def.sources[0].origin;
  return true;
}

}  // namespace

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::numeric: return "numeric";
    case Kind::bucket: return "bucket";
    case Kind::hashed: return "hashed";
    case Kind::cross: return "cross";
    case Kind::dot: return "dot";
    case Kind::lookup: return "lookup";
    case Kind::match: return "match";
  }
  return "?";
}

Plan Plan::build(const std::vector<FeatureDef>& defs) {
  if (defs.empty()) throw ValueError("a feature spec needs at least one feature");
  if (defs.size() > (size_t{1} << 20)) throw ValueError("too many features");
  Plan plan;
  InputSet items, request;
  std::set<std::string> seen;
  for (const FeatureDef& def : defs) {
    if (def.name.empty()) throw ValueError("a feature has an empty name");
    if (!seen.insert(def.name).second) throw ValueError("duplicate feature name '" + def.name + "'");
    plan.names.push_back(def.name);
    register_inputs(def, items, request, plan);
  }
  plan.item.inputs = std::move(items.inputs);
  plan.item.raw = {(items.slots() + 63) / 64, items.slots()};
  plan.request.inputs = std::move(request.inputs);
  plan.request.raw = {(request.slots() + 63) / 64, request.slots()};
  plan.n_maps = request.maps();
  auto side = [&](Origin o) -> SidePlan& { return o == Origin::item ? plan.item : plan.request; };

  // Pass 2: each feature on its side, or as a row op. Part and code words
  // are filled in pass 3, once every side knows how many codes it has.
  std::vector<std::pair<uint32_t, uint32_t>> side_out[2];  // (side float, output column)
  for (uint32_t out = 0; out < defs.size(); ++out) {
    const FeatureDef& def = defs[out];
    Origin origin;
    if (def.kind != Kind::dot && def.kind != Kind::lookup && single_origin(def, &origin)) {
      SidePlan& sp = side(origin);
      SideFeature f;
      f.kind = def.kind;
      f.out = sp.n_floats++;
      f.first = uint32_t(sp.refs.size());
      f.count = uint32_t(def.sources.size());
      const Role role = def.kind == Kind::numeric || def.kind == Kind::bucket ? Role::number : Role::code;
      for (uint32_t i = 0; i < def.sources.size(); ++i)
        sp.refs.push_back(raw_ref(sp, def.sources[i], role, i));
      f.fallback = def.fallback;
      f.buckets = def.buckets;
      f.first_boundary = uint32_t(sp.boundaries.size());
      f.n_boundaries = uint32_t(def.boundaries.size());
      sp.boundaries.insert(sp.boundaries.end(), def.boundaries.begin(), def.boundaries.end());
      sp.features.push_back(f);
      side_out[int(origin)].push_back({f.out, out});
      continue;
    }
    switch (def.kind) {
      case Kind::cross: {
        RowCross c{0, 0, out, def.buckets};
        for (Origin o : {Origin::item, Origin::request}) {
          SidePlan& sp = side(o);
          PartOp part{sp.n_parts++, uint32_t(sp.refs.size()), 0};
          for (uint32_t i = 0; i < def.sources.size(); ++i)
            if (def.sources[i].origin == o) {
              sp.refs.push_back(raw_ref(sp, def.sources[i], Role::code, i));
              ++part.count;
            }
          sp.parts.push_back(part);
          (o == Origin::item ? c.item_word : c.request_word) = part.word;  // a part index until pass 3
        }
        plan.cross.push_back(c);
        break;
      }
      case Kind::match: {
        const bool item_first = def.sources[0].origin == Origin::item;
        const Source& a = def.sources[item_first ? 0 : 1];
        const Source& b = def.sources[item_first ? 1 : 0];
        RowMatch m;
        m.item.code = code_index(plan.item, raw_ref(plan.item, a, Role::code, 0));
        m.request.code = code_index(plan.request, raw_ref(plan.request, b, Role::code, 0));
        m.out = out;
        plan.match.push_back(m);
        break;
      }
      case Kind::lookup: {
        const Input& field = find_input(plan.request, def.sources[0].name);
        RowLookup l;
        l.map = uint32_t(field.map_index);
        l.key.code = code_index(plan.item, raw_ref(plan.item, def.sources[1], Role::code, 0));
        l.out = out;
        l.fallback = def.fallback;
        plan.lookup.push_back(l);
        break;
      }
      case Kind::dot:
        plan.dot.push_back(out);
        break;
      default:
        throw ValueError("internal: feature '" + def.name + "' has no place");
    }
  }

  // Pass 3: words, now that each side's codes are counted; output runs.
  for (SidePlan* sp : {&plan.item, &plan.request})
    for (PartOp& p : sp->parts) p.word = sp->part_word(p.word);
  for (RowCross& c : plan.cross) {
    c.item_word = plan.item.part_word(c.item_word);
    c.request_word = plan.request.part_word(c.request_word);
  }
  for (RowMatch& m : plan.match) {
    m.item.word = plan.item.code_word(m.item.code);
    m.request.word = plan.request.code_word(m.request.code);
  }
  for (RowLookup& l : plan.lookup) l.key.word = plan.item.code_word(l.key.code);
  for (Origin o : {Origin::item, Origin::request})
    for (const auto& [from, out] : side_out[int(o)]) {
      auto& runs = side(o).runs;
      if (!runs.empty() && runs.back().from + runs.back().count == from &&
          runs.back().out + runs.back().count == out)
        ++runs.back().count;
      else
        runs.push_back({from, out, 1});
    }
  return plan;
}

}  // namespace engine::features
