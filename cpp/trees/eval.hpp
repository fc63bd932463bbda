// Forest evaluation kernels, one table per instruction-set level (each built
// in its own translation unit with its own flags), chosen with the distance
// kernels' level so that ENGINE_SIMD governs both.
#pragma once
#include <cstddef>
#include <vector>

#include "simd/kernels.hpp"
#include "trees/forest.hpp"

namespace engine::trees {

struct EvalKernels {
  simd::Level level;
  const char* name;
  // acc (n x n_outputs, initialised to the base scores) += the leaf values of
  // trees [tree_begin, tree_end) for rows X[i * stride ...], in tree order per row.
  void (*accumulate)(const Forest& f, const float* X, size_t n, size_t stride, double* acc,
                     size_t tree_begin, size_t tree_end);
};

const EvalKernels& active_eval();
const EvalKernels* eval_for(const char* name);  // nullptr: unknown or not runnable here
std::vector<const EvalKernels*> runnable_eval();

const EvalKernels& scalar_eval();
#if ENGINE_HAVE_X86
const EvalKernels& avx2_eval();
const EvalKernels& avx512_eval();
const EvalKernels& avx512_vbmi_eval();  // binned.hpp; the general walk for other forests
#endif

}  // namespace engine::trees
