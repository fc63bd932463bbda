// Coarse quantiser training for the IVF partition.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace engine::ann {

// k-means with assignment by inner product for ip/cos, by Euclidean distance
// for l2. Centroids are the means of their rows, scaled to unit length when
// unit_centroids (spherical k-means). Returns nlist * dim centroids.
std::vector<float> train_centroids(const float* x, size_t n, size_t dim, size_t nlist,
                                   bool by_inner_product, bool unit_centroids, int iterations,
                                   uint64_t seed, int threads);

// For each row the centroid with the highest 2<x,c> - |c|^2 (l2) or <x,c>
// (by_inner_product); centroid_sqnorms is ignored when by_inner_product.
void assign_to_centroids(const float* x, size_t n, size_t dim, const float* centroids,
                         const float* centroid_sqnorms, size_t nlist, bool by_inner_product,
                         uint32_t* out, int threads);

}  // namespace engine::ann
