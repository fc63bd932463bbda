// parallel_for over [0, n) in contiguous chunks on `threads` std::threads.
// The first exception thrown by any worker is rethrown after the join.
#pragma once
#include <algorithm>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace engine {

template <typename Fn>  // fn(begin, end)
void parallel_for(size_t n, int threads, Fn&& fn) {
  const size_t workers = std::max<size_t>(1, std::min<size_t>(threads > 0 ? threads : 1, n));
  if (workers <= 1) {
    if (n) fn(size_t{0}, n);
    return;
  }
  std::exception_ptr first_error;
  std::mutex error_mutex;
  std::vector<std::thread> pool;
  pool.reserve(workers);
  const size_t chunk = (n + workers - 1) / workers;
  for (size_t w = 0; w < workers; ++w) {
    const size_t begin = w * chunk, end = std::min(n, begin + chunk);
    if (begin >= end) break;
    pool.emplace_back([&, begin, end] {
      try {
        fn(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
      }
    });
  }
  for (auto& t : pool) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace engine
