// ModelWriter: streams blobs into a temporary file at aligned offsets behind a header reservation,
// then patches in preamble + header, fsyncs and renames atomically (see writer.h).
#include "qmodel/format/writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <random>
#include <vector>

#include "codec.h"
#include "fb_convert.h"
#include "qmodel/format/fault_guard.h"
#include "qmodel/format/preamble.h"
#include "verify_semantics.h"

namespace qmodel::format {
namespace {

// Slack on top of the skeleton's size, in case the final header differs a little (a longer string).
constexpr uint64_t kReserveSlackBytes = 1024;
constexpr uint64_t kReserveSlackPercent = 1;
constexpr uint64_t kMinAlignment = 64;
constexpr size_t kMaxWriteChunk = size_t{1} << 30;  // Linux writes at most ~2 GiB per call

Status io_error(const std::string& path, const std::string& what, int err) {
  return Status(StatusCode::kIoError, path + ": " + what + ": " + std::strerror(err));
}

bool round_up(uint64_t value, uint64_t alignment, uint64_t* out) {
  uint64_t sum = 0;
  if (__builtin_add_overflow(value, alignment - 1, &sum)) return false;
  *out = sum & ~(alignment - 1);
  return true;
}

Status pwrite_all(int fd, const uint8_t* data, size_t size, uint64_t offset, const std::string& path) {
  while (size > 0) {
    const size_t chunk = std::min(size, kMaxWriteChunk);
    const ssize_t n = ::pwrite(fd, data, chunk, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(path, "write failed at offset " + std::to_string(offset), errno);
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status();
}

std::string temp_path_for(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::random_device rd;
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "%08x", static_cast<unsigned>(rd()));
  return dir + "/." + base + ".tmp." + std::to_string(::getpid()) + "." + suffix;
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

Status fsync_dir(const std::string& path) {
  const std::string dir = dir_of(path);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error(dir, "cannot open directory to fsync", errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL && err != ENOTSUP) return io_error(dir, "fsync of directory failed", err);
  return Status();
}

// Moves the finished temporary file to `path`; without `overwrite` an existing path is an error,
// also one created since create() (RENAME_NOREPLACE where the file system supports it).
Status publish(const std::string& tmp, const std::string& path, bool overwrite) {
  if (!overwrite) {
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) return Status();
    if (errno == EEXIST) return Status(StatusCode::kInvalidArgument, path + ": already exists (overwrite not set)");
    if (errno != EINVAL && errno != ENOSYS) return io_error(path, "rename from " + tmp + " failed", errno);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      return Status(StatusCode::kInvalidArgument, path + ": already exists (overwrite not set)");
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io_error(path, "rename from " + tmp + " failed", errno);
  return Status();
}

}  // namespace

struct ModelWriter::Impl {
  std::string path;
  std::string tmp_path;
  RegisteredTempFile tmp_registration;  // a fatal signal handler (fault_guard.h) removes tmp_path too
  WriterOptions options;
  int fd = -1;
  uint64_t reserved_header_bytes = 0;
  uint64_t data_start = 0;
  uint64_t next_offset = 0;  // end of the last blob (data_start before the first)
  uint64_t file_end = 0;     // bytes actually written up to
  bool finished = false;
  bool dead = false;
  ZstdCompressor compressor;
  std::vector<uint8_t> compressed;

  ~Impl() {
    if (fd >= 0) ::close(fd);
    if (!finished && !tmp_path.empty()) ::unlink(tmp_path.c_str());
  }

  Result<BlobRef> append(BlobRole role, ByteSpan bytes);
  Status finish(ModelHeader header);

  // Reads the first `file_bytes` bytes back (the page cache has them), signs them and appends the
  // trailer at `file_bytes`.
  Status append_signature(uint64_t file_bytes) {
    const std::string& name = tmp_path.empty() ? path : tmp_path;
    auto read_back = [&](uint64_t offset, uint8_t* buffer, size_t n) -> Status {
      size_t done = 0;
      while (done < n) {
        const ssize_t r = ::pread(fd, buffer + done, n - done, static_cast<off_t>(offset + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return io_error(name, "reading back for the signature failed", errno);
        if (r == 0) std::memset(buffer + done, 0, n - done);  // a hole at the end reads as zeros
        done = r == 0 ? n : done + static_cast<size_t>(r);
      }
      return Status();
    };
    QMODEL_ASSIGN_OR_RETURN(const auto trailer, make_signature_trailer(file_bytes, read_back, *options.signing_key));
    return pwrite_all(fd, trailer.data(), trailer.size(), file_bytes, name);
  }
};

Result<BlobRef> ModelWriter::Impl::append(BlobRole role, ByteSpan bytes) {
  if (finished || dead) return Status(StatusCode::kInvalidArgument, path + ": append_blob after finish() or an error");
  if (static_cast<uint8_t>(role) > kMaxBlobRole) {
    return Status(StatusCode::kInvalidArgument, path + ": blob role " + std::to_string(static_cast<int>(role)) + " out of range");
  }
  if (bytes.empty()) return Status(StatusCode::kInvalidArgument, path + ": empty blob");
  uint64_t offset = 0;
  if (!round_up(next_offset, options.alignment, &offset)) {
    return Status(StatusCode::kInvalidArgument, path + ": data section offset overflows");
  }
  ByteSpan stored = bytes;
  Compression compression = Compression::kNone;
  if (options.compression == Compression::kZstd) {
    QMODEL_RETURN_IF_ERROR(compressor.compress(bytes, options.zstd_level, compressed));
    if (compressed.size() < bytes.size()) {  // keep zstd only where it saves space
      stored = ByteSpan(compressed.data(), compressed.size());
      compression = Compression::kZstd;
    }
  }
  BlobRef ref;
  ref.role = role;
  ref.offset = offset;
  ref.stored_size = stored.size();
  ref.raw_size = bytes.size();
  ref.compression = compression;
  ref.xxh3 = xxh3_64(stored);
  const Status st = pwrite_all(fd, stored.data(), stored.size(), offset, tmp_path.empty() ? path : tmp_path);
  if (!st.ok()) {
    dead = true;
    return st;
  }
  next_offset = offset + stored.size();
  file_end = next_offset;
  return ref;
}

Status ModelWriter::Impl::finish(ModelHeader header) {
  if (finished || dead) return Status(StatusCode::kInvalidArgument, path + ": finish() after finish() or an error");
  dead = true;  // any early return below leaves the writer dead; success sets finished
  header.alignment = options.alignment;
  header.format_version = kFormatVersion;
  QMODEL_ASSIGN_OR_RETURN(const std::vector<uint8_t> header_bytes, serialize_header(header));
  if (header_bytes.size() > reserved_header_bytes) {
    return Status(StatusCode::kInvalidArgument,
                  path + ": header is " + std::to_string(header_bytes.size()) + " bytes but only " +
                      std::to_string(reserved_header_bytes) +
                      " were reserved from the skeleton (the skeleton must have the final strings and vectors)");
  }
  FileGeometry geometry;
  geometry.name = path;
  geometry.header_end = kPreambleBytes + header_bytes.size();
  geometry.file_bytes = std::max(file_end, geometry.header_end);
  geometry.preamble_version = kFormatVersion;
  const Status valid = verify_header_semantics(geometry, header, {});
  if (!valid.ok()) return Status(StatusCode::kInvalidArgument, "refusing to write an invalid header: " + valid.message());

  std::vector<uint8_t> head(kPreambleBytes + header_bytes.size());
  Preamble preamble;
  preamble.format_version = kFormatVersion;
  preamble.preamble_bytes = static_cast<uint32_t>(kPreambleBytes);
  preamble.header_bytes = header_bytes.size();
  preamble.header_xxh3 = xxh3_64(ByteSpan(header_bytes.data(), header_bytes.size()));
  encode_preamble(preamble, head.data());
  std::memcpy(head.data() + kPreambleBytes, header_bytes.data(), header_bytes.size());
  QMODEL_RETURN_IF_ERROR(pwrite_all(fd, head.data(), head.size(), 0, tmp_path.empty() ? path : tmp_path));
  if (options.signing_key) QMODEL_RETURN_IF_ERROR(append_signature(std::max<uint64_t>(file_end, head.size())));
  if (::fsync(fd) != 0) return io_error(tmp_path.empty() ? path : tmp_path, "fsync failed", errno);
  if (tmp_path.empty()) {  // unnamed O_TMPFILE inode: give it a temporary name only now
    const std::string fd_path = "/proc/self/fd/" + std::to_string(fd);
    const std::string name = temp_path_for(path);
    if (::linkat(AT_FDCWD, fd_path.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      return io_error(name, "cannot link the finished file", errno);
    }
    tmp_path = name;  // from here the destructor unlinks it if publishing fails
    tmp_registration = RegisteredTempFile(tmp_path);
  }
  const int rc = ::close(fd);
  fd = -1;
  if (rc != 0) return io_error(tmp_path, "close failed", errno);
  QMODEL_RETURN_IF_ERROR(publish(tmp_path, path, options.overwrite));
  tmp_registration.release();
  finished = true;
  dead = false;
  return fsync_dir(path);
}

ModelWriter::ModelWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModelWriter::~ModelWriter() = default;

Result<std::unique_ptr<ModelWriter>> ModelWriter::create(const std::string& path, const WriterOptions& options,
                                                         const ModelHeader& skeleton) {
  try {
    const uint64_t a = options.alignment;
    if (a < kMinAlignment || (a & (a - 1)) != 0) {
      return Status(StatusCode::kInvalidArgument, path + ": alignment " + std::to_string(a) + " is not a power of two >= 64");
    }
    if (static_cast<uint8_t>(options.compression) > kMaxCompression) {
      return Status(StatusCode::kInvalidArgument, path + ": unknown compression");
    }
    if (options.compression == Compression::kZstd && !is_valid_zstd_level(options.zstd_level)) {
      return Status(StatusCode::kInvalidArgument, path + ": invalid zstd level " + std::to_string(options.zstd_level));
    }
    if (path.empty() || path.back() == '/') return Status(StatusCode::kInvalidArgument, "'" + path + "' is not a file path");
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) return Status(StatusCode::kInvalidArgument, path + ": is a directory");
      if (!options.overwrite) return Status(StatusCode::kInvalidArgument, path + ": already exists (overwrite not set)");
    } else if (::lstat(path.c_str(), &st) == 0 && !options.overwrite) {
      // A dangling symbolic link is a name that exists: publishing would replace the link itself.
      return Status(StatusCode::kInvalidArgument,
                    path + ": already exists as a dangling symbolic link (overwrite replaces the link, not its target)");
    }

    struct stat dir_st {};
    if (::stat(dir_of(path).c_str(), &dir_st) != 0 || !S_ISDIR(dir_st.st_mode)) {
      return Status(StatusCode::kIoError, path + ": the output folder " + dir_of(path) + " does not exist");
    }

    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->options = options;
    ModelHeader skel = skeleton;
    skel.alignment = options.alignment;
    skel.format_version = kFormatVersion;
    QMODEL_ASSIGN_OR_RETURN(const std::vector<uint8_t> skel_bytes, serialize_header(skel));
    const uint64_t n = skel_bytes.size();
    impl->reserved_header_bytes = n + kReserveSlackBytes + n * kReserveSlackPercent / 100;
    if (!round_up(kPreambleBytes + impl->reserved_header_bytes, a, &impl->data_start)) {
      return Status(StatusCode::kInvalidArgument, path + ": alignment too large");
    }
    impl->next_offset = impl->data_start;

    // Preferably an unnamed inode in the target directory (O_TMPFILE): a conversion that is killed
    // leaves nothing behind, not even a temporary file. File systems without it get a named
    // temporary file, removed by the destructor.
    impl->fd = ::open(dir_of(path).c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
    if (impl->fd < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT) {
      return io_error(path, "cannot create a temporary file in " + dir_of(path), errno);
    }
    for (int attempt = 0; attempt < 8 && impl->fd < 0; ++attempt) {
      impl->tmp_path = temp_path_for(path);
      impl->fd = ::open(impl->tmp_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (impl->fd >= 0) impl->tmp_registration = RegisteredTempFile(impl->tmp_path);
      if (impl->fd < 0 && errno != EEXIST) {
        const int err = errno;
        const std::string tmp = impl->tmp_path;
        impl->tmp_path.clear();  // nothing to unlink
        return io_error(tmp, "cannot create temporary file", err);
      }
    }
    if (impl->fd < 0) {
      impl->tmp_path.clear();
      return Status(StatusCode::kIoError, path + ": cannot find a free temporary file name");
    }
    return std::unique_ptr<ModelWriter>(new ModelWriter(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, path + ": out of memory creating the writer");
  }
}

Result<BlobRef> ModelWriter::append_blob(BlobRole role, ByteSpan bytes) {
  try {
    return impl_->append(role, bytes);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, impl_->path + ": out of memory compressing a blob");
  }
}

Status ModelWriter::finish(ModelHeader header) {
  try {
    return impl_->finish(std::move(header));
  } catch (const std::bad_alloc&) {
    impl_->dead = true;
    return Status(StatusCode::kOutOfMemory, impl_->path + ": out of memory writing the header");
  }
}

uint64_t ModelWriter::bytes_written() const { return impl_->next_offset - impl_->data_start; }

}  // namespace qmodel::format
