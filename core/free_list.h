// A cache of spare objects for one thread, so hot paths reuse memory
// instead of going to malloc. Sanitizer builds (SLUICE_NO_POOLS) bypass it,
// so ASan sees every use-after-free instead of a recycled block.
#pragma once

#include <cstddef>
#include <vector>

namespace sluice {

template <class T, size_t MaxCached>
class FreeList {
 public:
  FreeList() = default;
  FreeList(const FreeList&) = delete;
  FreeList& operator=(const FreeList&) = delete;
  ~FreeList() {
    for (T* t : cache_) delete t;
  }

  T* take() {
#ifndef SLUICE_NO_POOLS
    if (!cache_.empty()) {
      T* t = cache_.back();
      cache_.pop_back();
      return t;
    }
#endif
    return new T;
  }

  void give(T* t) {
#ifndef SLUICE_NO_POOLS
    if (cache_.size() < MaxCached) {
      cache_.push_back(t);
      return;
    }
#endif
    delete t;
  }

 private:
  std::vector<T*> cache_;
};

}  // namespace sluice
