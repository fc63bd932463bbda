#include "arrow/stream.hpp"

#include <string>

#include "common/errors.hpp"

namespace engine::arrow {

namespace {

// The producer's message for a failed call, if it gives one.
[[noreturn]] void fail(ArrowArrayStream& stream, const char* call, int code) {
  std::string message = "Arrow stream: " + std::string(call) + " failed with error code " +
                        std::to_string(code);
  const char* detail = stream.get_last_error ? stream.get_last_error(&stream) : nullptr;
  if (detail != nullptr && *detail != '\0') message += ": " + std::string(detail);
  throw ValueError(message);
}

}  // namespace

StreamChunks read_stream(ArrowArrayStream& stream) {
  if (stream.release == nullptr) throw ValueError("Arrow stream was already released");
  if (stream.get_schema == nullptr || stream.get_next == nullptr)
    throw ValueError("Arrow stream: get_schema or get_next is null");

  StreamChunks out;
  // On an error code the out struct is undefined (nothing to release), so it
  // is marked released before the owner could call into garbage.
  ArrowSchema* schema = out.schema.out();
  if (const int code = stream.get_schema(&stream, schema)) {
    schema->release = nullptr;
    fail(stream, "get_schema", code);
  }
  if (out.schema.released())
    throw ValueError("Arrow stream: get_schema returned a released schema");

  for (;;) {
    OwnedArray chunk;
    ArrowArray* raw = chunk.out();
    if (const int code = stream.get_next(&stream, raw)) {
      raw->release = nullptr;
      fail(stream, "get_next", code);
    }
    if (chunk.released()) break;  // the end of the stream
    // A negative length is left for the view to report; only a known-empty
    // chunk is dropped here.
    if (chunk->length != 0) out.chunks.push_back(std::move(chunk));
  }
  return out;
}

}  // namespace engine::arrow
