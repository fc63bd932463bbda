#include "simd/dispatch.hpp"

#include <cstdlib>

namespace engine::simd {

const char* level_name(Level level) {
  switch (level) {
    case Level::avx512: return "avx512";
    case Level::avx2: return "avx2";
    default: return "scalar";
  }
}

bool parse_level(const std::string& name, Level* out) {
  if (name == "avx512") { *out = Level::avx512; return true; }
  if (name == "avx2") { *out = Level::avx2; return true; }
  if (name == "scalar") { *out = Level::scalar; return true; }
  return false;
}

Level best_supported() {
#if ENGINE_HAVE_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return Level::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return Level::avx2;
#endif
  return Level::scalar;
}

static bool has_vnni() {
#if ENGINE_HAVE_X86
  return __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

const Kernels* for_level(Level level) {
  if (static_cast<int>(level) > static_cast<int>(best_supported())) return nullptr;
  switch (level) {
#if ENGINE_HAVE_X86
    case Level::avx512: return has_vnni() ? &avx512_vnni_kernels() : &avx512_kernels();
    case Level::avx2: return &avx2_kernels();
#endif
    default: return &scalar_kernels();
  }
}

std::vector<std::string> supported_level_names() {
  std::vector<std::string> names;
  for (int l = static_cast<int>(best_supported()); l >= 0; --l)
    names.emplace_back(level_name(static_cast<Level>(l)));
  return names;
}

std::vector<const Kernels*> runnable_tables() {
  std::vector<const Kernels*> tables{&scalar_kernels()};
#if ENGINE_HAVE_X86
  const Level best = best_supported();
  if (best >= Level::avx2) tables.push_back(&avx2_kernels());
  if (best >= Level::avx512) tables.push_back(&avx512_kernels());
  if (best >= Level::avx512 && has_vnni()) tables.push_back(&avx512_vnni_kernels());
#endif
  return tables;
}

static const Kernels& choose() {
  Level level = best_supported();
  // An unknown value falls back to the best level; the Python layer validates
  // ENGINE_SIMD before import and raises, so a typo is never silent there.
  if (const char* forced = std::getenv("ENGINE_SIMD")) {
    Level wanted;
    if (parse_level(forced, &wanted) && static_cast<int>(wanted) < static_cast<int>(level))
      level = wanted;
  }
  return *for_level(level);
}

const Kernels& active() {
  static const Kernels& chosen = choose();  // thread-safe one-time init
  return chosen;
}

}  // namespace engine::simd
