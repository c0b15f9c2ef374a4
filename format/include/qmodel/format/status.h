// Error values for everything that touches untrusted bytes (files, CLI arguments, tensor names).
// A Status carries a code and a message that names the file, the tensor and the byte offset where
// that applies. Exceptions never cross a library boundary; programmer errors use QMODEL_ASSERT.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace qmodel {

enum class StatusCode : int {
  kOk = 0,
  kIoError,          // open/read/write/mmap/rename failed
  kCorruptFile,      // bytes violate a format rule
  kUnsupported,      // valid but not handled (dtype, architecture, shape, blocksize...)
  kInvalidArgument,  // caller or command-line input is wrong
  kOutOfMemory,
  kCuda,
  kNotFound,         // a named thing (tensor, key, file) is absent
  kChecksumMismatch, // XXH3 of a blob or the header differs from the stored value, or a signature fails
  kCancelled,        // the caller asked to stop (qconvert: SIGINT/SIGTERM)
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok_status() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "kCorruptFile: model.qmodel: tensor 'x' at offset 4096: blob past end of file"
  std::string to_string() const;
  // Prepends context ("while reading X: ") to the message; keeps the code.
  Status with_context(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Builds the conventional message "FILE: tensor 'NAME' at offset N: WHAT". Empty parts are left out
// (tensor empty, offset < 0).
std::string error_location(const std::string& file, const std::string& tensor, int64_t offset);
Status corrupt_file(const std::string& file, const std::string& tensor, int64_t offset,
                    const std::string& what);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) {
      std::fprintf(stderr, "qmodel: Result constructed from an ok Status\n");
      std::abort();
    }
  }
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace qmodel

#define QMODEL_CONCAT_INNER(a, b) a##b
#define QMODEL_CONCAT(a, b) QMODEL_CONCAT_INNER(a, b)

#define QMODEL_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::qmodel::Status qmodel_status_ = (expr);     \
    if (!qmodel_status_.ok()) return qmodel_status_; \
  } while (0)

#define QMODEL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#define QMODEL_ASSIGN_OR_RETURN(lhs, expr) \
  QMODEL_ASSIGN_OR_RETURN_IMPL(QMODEL_CONCAT(qmodel_result_, __LINE__), lhs, expr)

// Programmer error (never bad input): abort with file:line, also in release builds.
#define QMODEL_ASSERT(cond)                                                              \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: QMODEL_ASSERT(%s) failed\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
