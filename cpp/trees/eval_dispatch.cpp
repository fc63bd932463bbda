#include "simd/dispatch.hpp"
#include "trees/eval.hpp"

#include <string>

namespace engine::trees {

// The binned walk's byte permutes, bit picks and bit-matrix transposes
// (Ice Lake, Zen 4 and later).
static bool has_vbmi() {
#if ENGINE_HAVE_X86
  return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bitalg") &&
         __builtin_cpu_supports("gfni") && __builtin_cpu_supports("bmi2");
#else
  return false;
#endif
}

static const EvalKernels* at_level(simd::Level level) {
  if (static_cast<int>(level) > static_cast<int>(simd::best_supported())) return nullptr;
  switch (level) {
#if ENGINE_HAVE_X86
    case simd::Level::avx512: return has_vbmi() ? &avx512_vbmi_eval() : &avx512_eval();
    case simd::Level::avx2: return &avx2_eval();
#endif
    default: return &scalar_eval();
  }
}

const EvalKernels& active_eval() {
  static const EvalKernels& chosen = *at_level(simd::active().level);  // ENGINE_SIMD applies
  return chosen;
}

const EvalKernels* eval_for(const char* name) {
#if ENGINE_HAVE_X86
  if (std::string(name) == "avx512-vbmi") return has_vbmi() ? &avx512_vbmi_eval() : nullptr;
  if (std::string(name) == "avx512")  // the general walk, also where VBMI is there
    return simd::best_supported() == simd::Level::avx512 ? &avx512_eval() : nullptr;
#endif
  simd::Level level;
  if (!simd::parse_level(name, &level)) return nullptr;
  return at_level(level);
}

std::vector<const EvalKernels*> runnable_eval() {
  std::vector<const EvalKernels*> out;
  for (int l = 0; l <= static_cast<int>(simd::best_supported()); ++l)
    out.push_back(at_level(static_cast<simd::Level>(l)));
#if ENGINE_HAVE_X86
  if (simd::best_supported() == simd::Level::avx512 && has_vbmi()) {
    out.back() = &avx512_eval();
    out.push_back(&avx512_vbmi_eval());
  }
#endif
  return out;
}

}  // namespace engine::trees
