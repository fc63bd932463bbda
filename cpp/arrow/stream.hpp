// Draining an ArrowArrayStream: the schema, then every chunk until the end
// marker, each an owned ArrowArray (the spec gives chunks a lifetime of their
// own, independent of the stream). Error codes from the producer become
// engine::ValueError carrying get_last_error's message.
#pragma once
#include <vector>

#include "arrow/c_data.hpp"

namespace engine::arrow {

struct StreamChunks {
  OwnedSchema schema;
  std::vector<OwnedArray> chunks;  // empty chunks dropped: they add no rows
};

// Reads `stream` to its end. The stream is borrowed: whoever owns it
// releases it.
StreamChunks read_stream(ArrowArrayStream& stream);

}  // namespace engine::arrow
