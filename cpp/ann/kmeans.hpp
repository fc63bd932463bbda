// Coarse quantiser training for the IVF partition.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace engine::ann {

// Spherical k-means (unit centroids, assignment by inner product) for ip/cos;
// Euclidean k-means for l2. Returns nlist * dim centroids.
std::vector<float> train_centroids(const float* x, size_t n, size_t dim, size_t nlist,
                                   bool spherical, int iterations, uint64_t seed, int threads);

// For each row the centroid with the highest 2<x,c> - |c|^2 (l2) or <x,c>
// (spherical); centroid_sqnorms is ignored when spherical.
void assign_to_centroids(const float* x, size_t n, size_t dim, const float* centroids,
                         const float* centroid_sqnorms, size_t nlist, bool spherical,
                         uint32_t* out, int threads);

}  // namespace engine::ann
