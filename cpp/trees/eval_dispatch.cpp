#include "simd/dispatch.hpp"
#include "trees/eval.hpp"

namespace engine::trees {

static const EvalKernels* at_level(simd::Level level) {
  if (static_cast<int>(level) > static_cast<int>(simd::best_supported())) return nullptr;
  switch (level) {
#if ENGINE_HAVE_X86
    case simd::Level::avx512: return &avx512_eval();
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
  simd::Level level;
  if (!simd::parse_level(name, &level)) return nullptr;
  return at_level(level);
}

std::vector<const EvalKernels*> runnable_eval() {
  std::vector<const EvalKernels*> out;
  for (int l = 0; l <= static_cast<int>(simd::best_supported()); ++l)
    out.push_back(at_level(static_cast<simd::Level>(l)));
  return out;
}

}  // namespace engine::trees
