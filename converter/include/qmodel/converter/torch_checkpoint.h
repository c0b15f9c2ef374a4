// Reader for PyTorch checkpoints (torch.save of a state dict): pytorch_model.bin and its shards,
// in the zip format (torch >= 1.6) and the legacy pre-zip format
// (_use_new_zipfile_serialization=False). Nothing is ever executed: the pickle is interpreted by a
// small restricted VM that only knows the globals a state dict needs (collections.OrderedDict,
// torch._utils._rebuild_tensor[_v2], _rebuild_parameter[_with_state], torch.*Storage) and refuses
// everything else (os.system, builtins.eval, unknown globals, INST/OBJ/EXT opcodes, REDUCE on
// anything but those callables) with an error naming the file, the opcode or global and its byte
// offset. Stack, memo, nesting depth and object count are bounded; every storage offset, size and
// stride is checked (overflow-checked arithmetic) against the bytes it points into.
//
// Tensor data is used straight from the read-only mapping (zip entries are STORED, as torch writes
// them); only non-contiguous views are copied into memory the TorchFile owns. F32, F16 and BF16
// tensors become TensorEntry values; integer and bool tensors (position_ids, attention-mask
// buffers) are listed in skipped(), which the runtime does not read; F64/complex are kUnsupported.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "qmodel/converter/safetensors.h"
#include "qmodel/format/span.h"
#include "qmodel/format/status.h"

namespace qmodel::converter {

class ReadOnlyMapping;

inline constexpr const char* kTorchSingleFileName = "pytorch_model.bin";
inline constexpr const char* kTorchIndexFileName = "pytorch_model.bin.index.json";

// Limits of the restricted unpickler (generous for any real state dict: a 405B checkpoint's
// pickle holds a few thousand tensors, ~20 objects each).
inline constexpr uint64_t kMaxPickleBytes = 1ull << 30;
inline constexpr size_t kMaxPickleObjects = 1u << 22;
inline constexpr size_t kMaxPickleStack = 1u << 20;
inline constexpr uint64_t kMaxPickleMemo = 1u << 20;  // largest memo index accepted
inline constexpr uint32_t kMaxPickleDepth = 64;       // MARK nesting and container nesting
inline constexpr size_t kMaxTensorRank = 16;
inline constexpr size_t kMaxZipEntries = 1u << 20;

// ---- Zip container ---------------------------------------------------------------------------

// One verified entry of a zip file: the central directory record cross-checked with its local
// header; [data_offset, data_offset + compressed_size) lies inside the file and overlaps no other
// entry. ZIP64 sizes and offsets are resolved.
struct ZipEntry {
  std::string name;
  uint16_t flags = 0;
  uint16_t method = 0;  // 0 = stored
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;
  uint64_t header_offset = 0;  // local file header
  uint64_t data_offset = 0;
};

// Reads and verifies the central directory of `bytes` (a whole zip file). Names containing a ".."
// component, an absolute path, a backslash or a NUL are refused, as are duplicates, multi-disk
// archives, and entries outside the file or overlapping each other. `file` is used in messages.
Result<std::vector<ZipEntry>> read_zip_directory(const std::string& file, ByteSpan bytes);

// ---- Restricted unpickler --------------------------------------------------------------------

enum class TorchDType : uint8_t { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool, kC64, kC128 };
const char* torch_dtype_name(TorchDType dtype);  // "float32", "int64", ...
size_t torch_dtype_size(TorchDType dtype);

// A storage referenced by a persistent id ('storage', <Type>Storage, key, location, numel[, view]).
struct PickledStorage {
  std::string key;
  TorchDType dtype = TorchDType::kF32;
  uint64_t numel = 0;  // elements of `dtype`
  std::string location;
};

// A tensor of the state dict: elements [storage_offset ...] of storages[storage], with a shape and
// element strides (both checked against the storage later, when its bytes are known).
struct PickledTensor {
  std::string name;
  size_t storage = 0;
  uint64_t storage_offset = 0;  // elements (includes a legacy storage view's offset)
  std::vector<uint64_t> shape;
  std::vector<uint64_t> stride;
  uint64_t pickle_offset = 0;  // absolute offset of the REDUCE that built it
};

struct PickledStateDict {
  std::vector<PickledStorage> storages;
  std::vector<PickledTensor> tensors;  // in pickle order
};

enum class PickleFlavor : uint8_t {
  kZip,     // 5-element persistent ids
  kLegacy,  // 6-element persistent ids (the last is None or a storage view (key, offset, numel))
};

// Interprets `pickle` as a torch state dict (a dict, possibly an OrderedDict, of name -> tensor).
// `base_offset` is the absolute file offset of pickle[0] (used in messages); `consumed` (optional)
// receives the number of bytes up to and including STOP.
Result<PickledStateDict> unpickle_state_dict(const std::string& file, ByteSpan pickle, uint64_t base_offset,
                                             PickleFlavor flavor, uint64_t* consumed = nullptr);

// ---- Whole files -----------------------------------------------------------------------------

// A non-float tensor left out of the conversion.
struct SkippedTensor {
  std::string name;
  TorchDType dtype = TorchDType::kI64;
  std::vector<uint64_t> shape;
};

// True when `bytes` starts like a torch checkpoint (zip local header, or a protocol-2+ pickle).
bool looks_like_torch_file(ByteSpan bytes);

class TorchFile {
 public:
  // Maps `path` and verifies it. kIoError when it cannot be read, kCorruptFile for a broken or
  // hostile file, kUnsupported for F64/complex tensors or compressed/encrypted entries.
  static Result<std::unique_ptr<TorchFile>> open(const std::string& path);
  // Same over caller-owned bytes (tests, fuzzing); they must outlive the result.
  static Result<std::unique_ptr<TorchFile>> open_memory(const std::string& name, ByteSpan bytes);
  ~TorchFile();
  TorchFile(const TorchFile&) = delete;
  TorchFile& operator=(const TorchFile&) = delete;

  // F32/F16/BF16 tensors in data-offset order (ties by name). `bytes` points into the mapping, or
  // into memory this object owns for a non-contiguous view; file_offset is the offset of the
  // first element in the file.
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  const std::vector<SkippedTensor>& skipped() const { return skipped_; }
  ByteSpan file_bytes() const { return file_bytes_; }
  const std::string& path() const { return path_; }
  bool legacy() const { return legacy_; }

  // As SafetensorsFile::release / prefetch. Thread-safe.
  void release(const TensorEntry& entry) const;
  void prefetch(const TensorEntry& entry) const;

 private:
  TorchFile() = default;
  static Result<std::unique_ptr<TorchFile>> parse(std::unique_ptr<TorchFile> file);
  Status parse_zip();
  Status parse_legacy();
  // Turns the pickled tensors into entries; `storage_bytes[i]` is storage i's bytes and
  // `storage_offsets[i]` their absolute file offset.
  Status build_entries(const PickledStateDict& dict, const std::vector<ByteSpan>& storage_bytes,
                       const std::vector<uint64_t>& storage_offsets);

  std::unique_ptr<ReadOnlyMapping> mapping_;  // null for open_memory
  std::string path_;
  std::string entry_file_;
  ByteSpan file_bytes_;
  bool legacy_ = false;
  std::vector<TensorEntry> tensors_;
  std::vector<SkippedTensor> skipped_;
  std::deque<std::vector<uint8_t>> owned_;  // materialised non-contiguous views
};

}  // namespace qmodel::converter
