// Coarse quantiser training for the IVF partition.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace engine::ann {

// k-means with assignment by inner product for ip/cos, by Euclidean distance
// for l2; centroids are the plain means of their rows either way. Returns
// nlist * dim centroids.
//
// Means, not unit vectors, for ip/cos too: <q, mean> is the average score of
// a list's rows, so lists rank by what they hold. On the 1M x 64 benchmark
// catalogue that took unfiltered recall@10 at 10 probed lists from 0.952
// (unit centroids, spherical k-means) to 0.982, and 0.99 from 40 lists to 16;
// the calibrated default fell from 37 lists to 15 there and from 353 to 98 on
// the pipeline benchmark's world. The price is less even lists (largest 9,025
// rows against 1,374 on the benchmark catalogue).
std::vector<float> train_centroids(const float* x, size_t n, size_t dim, size_t nlist,
                                   bool by_inner_product, int iterations, uint64_t seed, int threads);

// For each row the centroid with the highest 2<x,c> - |c|^2 (l2) or <x,c>
// (by_inner_product); centroid_sqnorms is ignored when by_inner_product.
void assign_to_centroids(const float* x, size_t n, size_t dim, const float* centroids,
                         const float* centroid_sqnorms, size_t nlist, bool by_inner_product,
                         uint32_t* out, int threads);

}  // namespace engine::ann
