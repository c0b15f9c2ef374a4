// A Hugging Face checkpoint folder: model.safetensors, or the shards listed in
// model.safetensors.index.json. Every listed shard must exist and verify; every indexed tensor
// must be in the shard the index names, every shard tensor must be indexed, and no tensor may
// appear twice. Tensors stay in the (lazily paged) mappings until released.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "qmodel/converter/safetensors.h"
#include "qmodel/format/status.h"

namespace qmodel::converter {

inline constexpr const char* kSingleFileName = "model.safetensors";
inline constexpr const char* kIndexFileName = "model.safetensors.index.json";
inline constexpr uint64_t kMaxIndexFileBytes = 64ull << 20;  // real indexes are well under 1 MB

class Checkpoint {
 public:
  // `dir_or_file` is a folder (the index wins over model.safetensors when both exist) or one
  // .safetensors file, whose folder then becomes dir(). Errors: kNotFound when the folder has
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
  // Relative names of the safetensors files used, in shard order.
  std::vector<std::string> files() const;
  // The folder the checkpoint was opened from ("." for a bare file name).
  const std::string& dir() const { return dir_; }
  // The shard named `file` (a files() entry); nullptr when unknown.
  const SafetensorsFile* shard(const std::string& file) const;
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
  Status add_shard(std::unique_ptr<SafetensorsFile> shard);

  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::vector<std::string> shard_names_;
  std::vector<TensorEntry> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
  std::map<std::string, std::string> index_metadata_;
};

}  // namespace qmodel::converter
