// A Hugging Face checkpoint folder: model.safetensors, or the shards listed in
// model.safetensors.index.json; failing those, PyTorch's pytorch_model.bin or the shards listed in
// pytorch_model.bin.index.json (torch_checkpoint.h; safetensors wins when a folder has both).
// Every listed shard must exist and verify; every indexed tensor must be in the shard the index
// names, every shard tensor must be indexed, and no tensor may appear twice. Tensors stay in the
// (lazily paged) mappings until released.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "qmodel/converter/safetensors.h"
#include "qmodel/converter/torch_checkpoint.h"
#include "qmodel/format/status.h"

namespace qmodel::converter {

inline constexpr const char* kSingleFileName = "model.safetensors";
inline constexpr const char* kIndexFileName = "model.safetensors.index.json";
inline constexpr uint64_t kMaxIndexFileBytes = 64ull << 20;  // real indexes are well under 1 MB

class Checkpoint {
 public:
  // `dir_or_file` is a folder (the index wins over model.safetensors when both exist; safetensors
  // wins over pytorch_model.bin[.index.json]) or one .safetensors or torch .bin file, whose folder
  // then becomes dir(). Errors: kNotFound when the folder has
  // neither file, kIoError, kCorruptFile (broken index or shard, inconsistent index, a tensor in
  // two shards), kUnsupported (dtype). Not thread-safe to open; const methods are.
  static Result<std::unique_ptr<Checkpoint>> open(const std::string& dir_or_file);
  ~Checkpoint();
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  // All tensors, in shard order (sorted file names), then data offset. Entries point into the
  // mappings and live as long as this Checkpoint.
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorEntry* find(const std::string& name) const;
  // Relative names of the checkpoint files used (safetensors or .bin), in shard order.
  std::vector<std::string> files() const;
  // The whole bytes of `file` (a files() entry), e.g. to hash it for provenance; empty when unknown.
  ByteSpan file_bytes(const std::string& file) const;
  // The index file used ("" without one): kIndexFileName or kTorchIndexFileName.
  const std::string& index_file() const { return index_file_; }
  // The folder the checkpoint was opened from ("." for a bare file name).
  const std::string& dir() const { return dir_; }
  // The safetensors shard named `file` (a files() entry); nullptr when unknown or a .bin file.
  const SafetensorsFile* shard(const std::string& file) const;
  // The torch shard named `file`; nullptr when unknown or a safetensors file.
  const TorchFile* torch_shard(const std::string& file) const;
  // Non-float tensors of .bin files (int64 position_ids, bool masks) that are not in tensors().
  const std::vector<SkippedTensor>& skipped() const { return skipped_; }
  // Human-readable notes for the conversion summary (e.g. the skipped tensors); empty for
  // safetensors checkpoints.
  std::vector<std::string> warnings() const;
  // The index's "metadata" object as strings (e.g. total_size); empty without an index.
  const std::map<std::string, std::string>& index_metadata() const { return index_metadata_; }
  // Sum of the byte sizes of all tensors.
  uint64_t total_tensor_bytes() const;

  // Drops the pages of `entry` from this process (see SafetensorsFile::release). Thread-safe.
  void release(const TensorEntry& entry) const;
  // Hints that `entry` will be read soon. Thread-safe.
  void prefetch(const TensorEntry& entry) const;

 private:
  Checkpoint() = default;
  // Indexes one file's entries by name; a name seen in an earlier file is kCorruptFile.
  Status add_entries(const std::string& path, const std::vector<TensorEntry>& entries);
  Status add_shard(std::unique_ptr<SafetensorsFile> shard);
  Status add_torch_shard(std::unique_ptr<TorchFile> shard);
  static Result<std::unique_ptr<Checkpoint>> open_torch(const std::string& dir, std::unique_ptr<Checkpoint> ckpt);

  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;  // parallel to shard_names_ (null for .bin)
  std::vector<std::unique_ptr<TorchFile>> torch_shards_;  // parallel to shard_names_ (null for safetensors)
  std::vector<SkippedTensor> skipped_;
  std::string index_file_;
  std::vector<std::string> shard_names_;
  std::vector<TensorEntry> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
  std::map<std::string, std::string> index_metadata_;
};

}  // namespace qmodel::converter
