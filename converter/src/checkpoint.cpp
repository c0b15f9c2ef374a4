// Checkpoint: finds the safetensors (or torch .bin) files of a Hugging Face folder, opens each (all
// verified), and cross-checks them against model.safetensors.index.json (pytorch_model.bin.index.json).
#include "qmodel/converter/checkpoint.h"

#include <sys/stat.h>

#include <cstdio>
#include <new>
#include <set>

#include "strict_json.h"
#include "text_file.h"

namespace qmodel::converter {

namespace {

using nlohmann::json;

enum class PathKind { kMissing, kFile, kDirectory, kOther };

PathKind path_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return PathKind::kMissing;
  if (S_ISREG(st.st_mode)) return PathKind::kFile;
  if (S_ISDIR(st.st_mode)) return PathKind::kDirectory;
  return PathKind::kOther;
}

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

// A shard name from the index must be a plain file name in the same folder (no path traversal).
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find('\0') == std::string::npos;
}

struct Index {
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
  std::map<std::string, std::string> metadata;
};

Result<Index> parse_index(const std::string& path) {
  QMODEL_ASSIGN_OR_RETURN(std::string text, read_text_file_capped(path, kMaxIndexFileBytes));
  QMODEL_ASSIGN_OR_RETURN(json root, parse_strict_json(text, path, 0));
  if (!root.is_object()) return corrupt_file(path, "", -1, std::string("must be a JSON object, got ") + json_type_name(root));
  Index index;
  const auto metadata = root.find("metadata");
  if (metadata != root.end() && !metadata->is_null()) {
    if (!metadata->is_object()) {
      return corrupt_file(path, "", -1, std::string("'metadata' must be an object, got ") + json_type_name(*metadata));
    }
    for (auto it = metadata->begin(); it != metadata->end(); ++it) {
      index.metadata[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
    }
  }
  const auto weight_map = root.find("weight_map");
  if (weight_map == root.end()) return corrupt_file(path, "", -1, "missing key 'weight_map'");
  if (!weight_map->is_object()) {
    return corrupt_file(path, "", -1, std::string("'weight_map' must be an object, got ") + json_type_name(*weight_map));
  }
  for (auto it = weight_map->begin(); it != weight_map->end(); ++it) {
    if (!it.value().is_string()) {
      return corrupt_file(path, it.key(), -1,
                          std::string("'weight_map' value must be a file name, got ") + json_type_name(it.value()));
    }
    const std::string& shard = it.value().get_ref<const std::string&>();
    if (!is_plain_file_name(shard)) {
      return corrupt_file(path, it.key(), -1, "shard '" + shard + "' is not a plain file name in the same folder");
    }
    index.weight_map[it.key()] = shard;
  }
  if (index.weight_map.empty()) return corrupt_file(path, "", -1, "'weight_map' lists no tensors");
  return index;
}

}  // namespace

Checkpoint::~Checkpoint() = default;

Status Checkpoint::add_entries(const std::string& path, const std::vector<TensorEntry>& entries) {
  for (const TensorEntry& entry : entries) {
    const auto [it, inserted] = by_name_.emplace(entry.name, tensors_.size());
    if (!inserted) {
      return corrupt_file(path, entry.name, static_cast<int64_t>(entry.file_offset),
                          "tensor also appears in '" + tensors_[it->second].file + "'");
    }
    tensors_.push_back(entry);
  }
  return Status::ok_status();
}

Status Checkpoint::add_shard(std::unique_ptr<SafetensorsFile> shard) {
  QMODEL_RETURN_IF_ERROR(add_entries(shard->path(), shard->tensors()));
  shards_.push_back(std::move(shard));
  torch_shards_.push_back(nullptr);
  return Status::ok_status();
}

Status Checkpoint::add_torch_shard(std::unique_ptr<TorchFile> shard) {
  QMODEL_RETURN_IF_ERROR(add_entries(shard->path(), shard->tensors()));
  for (const SkippedTensor& t : shard->skipped()) skipped_.push_back(t);
  torch_shards_.push_back(std::move(shard));
  shards_.push_back(nullptr);
  return Status::ok_status();
}

namespace {

// Opens one checkpoint file: torch when its first bytes say so (or it is named *.bin), else
// safetensors.
struct OpenedFile {
  std::unique_ptr<SafetensorsFile> safetensors;
  std::unique_ptr<TorchFile> torch;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Result<OpenedFile> open_file(const std::string& path, bool torch) {
  OpenedFile f;
  if (torch) {
    QMODEL_ASSIGN_OR_RETURN(f.torch, TorchFile::open(path));
  } else {
    QMODEL_ASSIGN_OR_RETURN(f.safetensors, SafetensorsFile::open(path));
  }
  return f;
}

// Sniffs a single file given on the command line.
Result<bool> is_torch_file(const std::string& path) {
  if (ends_with(path, ".safetensors")) return false;
  if (ends_with(path, ".bin") || ends_with(path, ".pt") || ends_with(path, ".pth")) return true;
  uint8_t head[4] = {0, 0, 0, 0};
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Status(StatusCode::kIoError, path + ": cannot open");
  const size_t n = std::fread(head, 1, sizeof(head), f);
  std::fclose(f);
  return looks_like_torch_file(ByteSpan(head, n));
}

}  // namespace

Result<std::unique_ptr<Checkpoint>> Checkpoint::open(const std::string& dir_or_file) {
  try {
    std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
    const PathKind kind = path_kind(dir_or_file);
    if (kind == PathKind::kMissing) return Status(StatusCode::kNotFound, dir_or_file + ": no such file or folder");
    if (kind == PathKind::kOther) return Status(StatusCode::kIoError, dir_or_file + ": not a file or folder");

    if (kind == PathKind::kFile) {
      const size_t slash = dir_or_file.find_last_of('/');
      ckpt->dir_ = slash == std::string::npos ? "." : slash == 0 ? "/" : dir_or_file.substr(0, slash);
      QMODEL_ASSIGN_OR_RETURN(const bool torch, is_torch_file(dir_or_file));
      QMODEL_ASSIGN_OR_RETURN(OpenedFile file, open_file(dir_or_file, torch));
      ckpt->shard_names_.push_back(slash == std::string::npos ? dir_or_file : dir_or_file.substr(slash + 1));
      if (torch) {
        QMODEL_RETURN_IF_ERROR(ckpt->add_torch_shard(std::move(file.torch)));
      } else {
        QMODEL_RETURN_IF_ERROR(ckpt->add_shard(std::move(file.safetensors)));
      }
      return ckpt;
    }

    ckpt->dir_ = dir_or_file;
    // Safetensors first (index, then single file), then the torch equivalents.
    const struct {
      const char* index;
      const char* single;
      bool torch;
    } kLayouts[] = {{kIndexFileName, kSingleFileName, false}, {kTorchIndexFileName, kTorchSingleFileName, true}};
    for (const auto& layout : kLayouts) {
      const std::string index_path = join(dir_or_file, layout.index);
      const std::string single = join(dir_or_file, layout.single);
      const bool has_index = path_kind(index_path) != PathKind::kMissing;
      if (!has_index && path_kind(single) == PathKind::kMissing) continue;
      if (!has_index) {
        QMODEL_ASSIGN_OR_RETURN(OpenedFile file, open_file(single, layout.torch));
        ckpt->shard_names_.push_back(layout.single);
        if (layout.torch) {
          QMODEL_RETURN_IF_ERROR(ckpt->add_torch_shard(std::move(file.torch)));
        } else {
          QMODEL_RETURN_IF_ERROR(ckpt->add_shard(std::move(file.safetensors)));
        }
        return ckpt;
      }
      ckpt->index_file_ = layout.index;
      QMODEL_ASSIGN_OR_RETURN(Index index, parse_index(index_path));
      ckpt->index_metadata_ = std::move(index.metadata);
      std::set<std::string> shard_set;  // sorted: model-00001-of-0000N first
      for (const auto& [tensor, shard] : index.weight_map) {
        if (shard_set.insert(shard).second && path_kind(join(dir_or_file, shard)) != PathKind::kFile) {
          return Status(StatusCode::kNotFound, error_location(index_path, tensor, -1) + ": the index names shard '" +
                                                   shard + "', which does not exist");
        }
      }
      std::set<std::string> present;  // every tensor name seen, skipped ones included
      for (const std::string& shard_name : shard_set) {
        QMODEL_ASSIGN_OR_RETURN(OpenedFile file, open_file(join(dir_or_file, shard_name), layout.torch));
        const std::string& path = layout.torch ? file.torch->path() : file.safetensors->path();
        std::vector<std::pair<std::string, int64_t>> names;
        for (const TensorEntry& entry : layout.torch ? file.torch->tensors() : file.safetensors->tensors()) {
          names.emplace_back(entry.name, static_cast<int64_t>(entry.file_offset));
        }
        if (layout.torch) {
          for (const SkippedTensor& t : file.torch->skipped()) names.emplace_back(t.name, -1);
        }
        for (const auto& [name, offset] : names) {
          const auto listed = index.weight_map.find(name);
          if (!present.insert(name).second) {
            const TensorEntry* seen = ckpt->find(name);
            return corrupt_file(path, name, offset,
                                "tensor also appears in '" + (seen ? seen->file : std::string("another shard")) + "'");
          }
          if (listed == index.weight_map.end()) {
            return corrupt_file(path, name, offset, std::string("tensor is not listed in ") + layout.index);
          }
          if (listed->second != shard_name) {
            return corrupt_file(path, name, offset, std::string(layout.index) + " places this tensor in '" + listed->second + "'");
          }
        }
        ckpt->shard_names_.push_back(shard_name);
        if (layout.torch) {
          QMODEL_RETURN_IF_ERROR(ckpt->add_torch_shard(std::move(file.torch)));
        } else {
          QMODEL_RETURN_IF_ERROR(ckpt->add_shard(std::move(file.safetensors)));
        }
      }
      for (const auto& [tensor, shard] : index.weight_map) {
        if (present.count(tensor) == 0) {
          return corrupt_file(join(dir_or_file, shard), tensor, -1,
                              std::string("listed in ") + layout.index + " but not present in this shard");
        }
      }
      return ckpt;
    }
    return Status(StatusCode::kNotFound, dir_or_file + ": has neither " + kSingleFileName + " nor " + kIndexFileName + " (nor " +
                                             kTorchSingleFileName + " nor " + kTorchIndexFileName + ")");
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, dir_or_file + ": out of memory opening the checkpoint");
  }
}

const TensorEntry* Checkpoint::find(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

std::vector<std::string> Checkpoint::files() const { return shard_names_; }

const SafetensorsFile* Checkpoint::shard(const std::string& file) const {
  for (size_t i = 0; i < shard_names_.size(); ++i) {
    if (shard_names_[i] == file) return shards_[i].get();
  }
  return nullptr;
}

const TorchFile* Checkpoint::torch_shard(const std::string& file) const {
  for (size_t i = 0; i < shard_names_.size(); ++i) {
    if (shard_names_[i] == file) return torch_shards_[i].get();
  }
  return nullptr;
}

ByteSpan Checkpoint::file_bytes(const std::string& file) const {
  if (const SafetensorsFile* st = shard(file)) return st->file_bytes();
  if (const TorchFile* pt = torch_shard(file)) return pt->file_bytes();
  return ByteSpan();
}

std::vector<std::string> Checkpoint::warnings() const {
  std::vector<std::string> out;
  if (skipped_.empty()) return out;
  std::string list;
  for (size_t i = 0; i < skipped_.size(); ++i) {
    if (i == 20) {
      list += ", ... (" + std::to_string(skipped_.size() - 20) + " more)";
      break;
    }
    std::string shape;
    for (size_t d = 0; d < skipped_[i].shape.size(); ++d) shape += (d ? ", " : "") + std::to_string(skipped_[i].shape[d]);
    list += (i ? ", " : "") + skipped_[i].name + " (" + torch_dtype_name(skipped_[i].dtype) + " [" + shape + "])";
  }
  out.push_back("skipped " + std::to_string(skipped_.size()) +
                " non-float tensor(s) of the .bin checkpoint (buffers the runtime does not read): " + list);
  return out;
}

uint64_t Checkpoint::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const TensorEntry& entry : tensors_) total += entry.bytes.size();
  return total;
}

void Checkpoint::release(const TensorEntry& entry) const {
  if (const SafetensorsFile* file = shard(entry.file)) file->release(entry);
  if (const TorchFile* file = torch_shard(entry.file)) file->release(entry);
}

void Checkpoint::prefetch(const TensorEntry& entry) const {
  if (const SafetensorsFile* file = shard(entry.file)) file->prefetch(entry);
  if (const TorchFile* file = torch_shard(entry.file)) file->prefetch(entry);
}

}  // namespace qmodel::converter
