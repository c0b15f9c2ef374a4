#include "qmodel/format/status.h"

namespace qmodel {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kIoError: return "io error";
    case StatusCode::kCorruptFile: return "corrupt file";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kOutOfMemory: return "out of memory";
    case StatusCode::kCuda: return "cuda error";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kChecksumMismatch: return "checksum mismatch";
    case StatusCode::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(status_code_name(code_)) + ": " + message_;
}

Status Status::with_context(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

std::string error_location(const std::string& file, const std::string& tensor, int64_t offset) {
  std::string out = file;
  if (!tensor.empty()) out += (out.empty() ? "" : ": ") + std::string("tensor '") + tensor + "'";
  if (offset >= 0) {
    out += (out.empty() ? "" : tensor.empty() ? ": " : " ");
    out += "at offset " + std::to_string(offset);
  }
  return out;
}

Status corrupt_file(const std::string& file, const std::string& tensor, int64_t offset,
                    const std::string& what) {
  std::string where = error_location(file, tensor, offset);
  return Status(StatusCode::kCorruptFile, where.empty() ? what : where + ": " + what);
}

}  // namespace qmodel
