// The Arrow C Data Interface structs, verbatim from the specification
// (https://arrow.apache.org/docs/format/CDataInterface.html and
// CStreamInterface.html), plus RAII owners that call `release` exactly once.
// The guards let this header coexist with nanoarrow's or libarrow's copy.
#pragma once
#include <cstdint>
#include <utility>

extern "C" {

#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE

#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4

struct ArrowSchema {
  // Array type description
  const char* format;
  const char* name;
  const char* metadata;
  int64_t flags;
  int64_t n_children;
  struct ArrowSchema** children;
  struct ArrowSchema* dictionary;

  // Release callback
  void (*release)(struct ArrowSchema*);
  // Opaque producer-specific data
  void* private_data;
};

struct ArrowArray {
  // Array data description
  int64_t length;
  int64_t null_count;
  int64_t offset;
  int64_t n_buffers;
  int64_t n_children;
  const void** buffers;
  struct ArrowArray** children;
  struct ArrowArray* dictionary;

  // Release callback
  void (*release)(struct ArrowArray*);
  // Opaque producer-specific data
  void* private_data;
};

#endif  // ARROW_C_DATA_INTERFACE

#ifndef ARROW_C_STREAM_INTERFACE
#define ARROW_C_STREAM_INTERFACE

struct ArrowArrayStream {
  // Callbacks providing stream functionality
  int (*get_schema)(struct ArrowArrayStream*, struct ArrowSchema* out);
  int (*get_next)(struct ArrowArrayStream*, struct ArrowArray* out);
  const char* (*get_last_error)(struct ArrowArrayStream*);

  // Release callback
  void (*release)(struct ArrowArrayStream*);

  // Opaque producer-specific data
  void* private_data;
};

#endif  // ARROW_C_STREAM_INTERFACE
}

namespace engine::arrow {

// Owns one C Data Interface struct by value. A struct whose `release` is
// null is already released (the spec's marker), so the destructor skips it.
// Moving follows the spec's rule for moving a struct: copy the bytes and mark
// the source released, so exactly one owner ever calls `release`.
template <typename Struct>
class Owned {
 public:
  Owned() = default;
  ~Owned() { reset(); }
  Owned(Owned&& other) noexcept : raw_(other.raw_) { other.raw_.release = nullptr; }
  Owned& operator=(Owned&& other) noexcept {
    if (this != &other) {
      reset();
      raw_ = other.raw_;
      other.raw_.release = nullptr;
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;

  // Where a producer writes a new struct (get_schema / get_next); anything
  // held before is released first.
  Struct* out() {
    reset();
    return &raw_;
  }
  Struct* get() { return &raw_; }
  const Struct& operator*() const { return raw_; }
  const Struct* operator->() const { return &raw_; }
  bool released() const { return raw_.release == nullptr; }

  void reset() {
    if (raw_.release != nullptr) raw_.release(&raw_);
    // A conforming release nulls this itself; a sloppy one must not get a second call.
    raw_.release = nullptr;
  }

 private:
  Struct raw_{};
};

using OwnedSchema = Owned<ArrowSchema>;
using OwnedArray = Owned<ArrowArray>;
using OwnedStream = Owned<ArrowArrayStream>;

}  // namespace engine::arrow
