#include "ann/kmeans.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "common/parallel.hpp"
#include "simd/dispatch.hpp"

namespace engine::ann {

void assign_to_centroids(const float* x, size_t n, size_t dim, const float* centroids,
                         const float* centroid_sqnorms, size_t nlist, bool by_inner_product,
                         uint32_t* out, int threads) {
  const auto& k = simd::active();
  // Points are the packed operand of the matrix kernel (a block of them is
  // packed once) and the centroids stream past as its "queries"; the
  // running best per point is then a loop over centroids that vectorises.
  constexpr size_t kBlock = 128;
  const size_t blocks = (n + kBlock - 1) / kBlock;
  parallel_for(blocks, threads, [&](size_t b0, size_t b1) {
    std::vector<float> scores(nlist * kBlock), best(kBlock);
    std::vector<uint32_t> arg(kBlock);
    for (size_t b = b0; b < b1; ++b) {
      const size_t i0 = b * kBlock, m = std::min(kBlock, n - i0);
      k.dot_f32_multi(centroids, nlist, x + i0 * dim, m, dim, scores.data());  // nlist x m
      std::fill(best.begin(), best.end(), -INFINITY);
      std::fill(arg.begin(), arg.end(), 0u);
      for (size_t c = 0; c < nlist; ++c) {
        const float* s = scores.data() + c * m;
        const float shift = by_inner_product ? 0.0f : centroid_sqnorms[c];
        const float scale = by_inner_product ? 1.0f : 2.0f;
        for (size_t j = 0; j < m; ++j) {
          const float v = scale * s[j] - shift;
          const bool better = v > best[j];
          best[j] = better ? v : best[j];
          arg[j] = better ? uint32_t(c) : arg[j];
        }
      }
      std::copy_n(arg.begin(), m, out + i0);
    }
  });
}

std::vector<float> train_centroids(const float* x, size_t n, size_t dim, size_t nlist,
                                   bool by_inner_product, int iterations, uint64_t seed, int threads) {
  std::mt19937_64 rng(seed);
  // Train on a sample: 32 points per centroid is enough for a coarse quantiser.
  const size_t m = std::min(n, nlist * 32);
  std::vector<size_t> pick(n);
  std::iota(pick.begin(), pick.end(), size_t{0});
  for (size_t i = 0; i < m; ++i) std::swap(pick[i], pick[i + rng() % (n - i)]);
  std::vector<float> sample(m * dim);
  for (size_t i = 0; i < m; ++i) std::copy_n(x + pick[i] * dim, dim, sample.data() + i * dim);

  std::vector<float> cent(nlist * dim);
  for (size_t c = 0; c < nlist; ++c)  // the first nlist sampled points are distinct rows
    std::copy_n(sample.data() + (c % m) * dim, dim, cent.data() + c * dim);

  std::vector<uint32_t> assign(m);
  std::vector<float> cnorm(nlist);
  std::vector<double> sums(nlist * dim);
  std::vector<size_t> counts(nlist);
  for (int it = 0; it < iterations; ++it) {
    for (size_t c = 0; c < nlist; ++c) {
      double s = 0;
      for (size_t d = 0; d < dim; ++d) s += double(cent[c * dim + d]) * cent[c * dim + d];
      cnorm[c] = float(s);
    }
    assign_to_centroids(sample.data(), m, dim, cent.data(), cnorm.data(), nlist, by_inner_product,
                        assign.data(), threads);
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0);
    for (size_t i = 0; i < m; ++i) {
      const uint32_t c = assign[i];
      ++counts[c];
      for (size_t d = 0; d < dim; ++d) sums[c * dim + d] += sample[i * dim + d];
    }
    for (size_t c = 0; c < nlist; ++c) {
      if (counts[c] == 0) {
        // An empty cluster restarts at a random point of the largest one,
        // slightly perturbed, so that cluster splits in the next pass.
        const size_t big = size_t(std::max_element(counts.begin(), counts.end()) - counts.begin());
        size_t donor = rng() % m;
        for (size_t tries = 0; tries < 64 && assign[donor] != big; ++tries) donor = rng() % m;
        for (size_t d = 0; d < dim; ++d)
          cent[c * dim + d] = sample[donor * dim + d] * (1.0f + 1e-3f * float(int(rng() % 3) - 1));
      } else {
        for (size_t d = 0; d < dim; ++d) cent[c * dim + d] = float(sums[c * dim + d] / double(counts[c]));
      }
    }
  }
  return cent;
}

}  // namespace engine::ann
