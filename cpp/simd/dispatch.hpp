// Chooses the kernel table once per process: the best level the CPU supports,
// lowered by ENGINE_SIMD=avx512|avx2|scalar (never raised above the CPU).
#pragma once
#include <string>
#include <vector>

#include "simd/kernels.hpp"

namespace engine::simd {

const Kernels& active();               // the table in use
Level best_supported();                // what the CPU can run
const Kernels* for_level(Level level); // nullptr when the CPU cannot run it
// Every table this CPU can run, including variants within a level (AVX-512
// with and without VNNI), so tests can check each against the scalar one.
std::vector<const Kernels*> runnable_tables();
std::vector<std::string> supported_level_names();
const char* level_name(Level level);
bool parse_level(const std::string& name, Level* out);

}  // namespace engine::simd
