// The restricted pickle VM behind unpickle_state_dict (private to the converter). Objects live in
// one arena and refer to each other by index, so shared and even cyclic references (memo) need no
// ownership graph; nothing recurses over the object graph.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qmodel/converter/torch_checkpoint.h"

namespace qmodel::converter::pickle {

enum class Kind : uint8_t { kNone, kBool, kInt, kBigInt, kFloat, kStr, kBytes, kTuple, kList, kDict, kGlobal, kStorage, kTensor };
const char* kind_name(Kind kind);

// Allowed globals (the whole allowlist).
enum class Global : uint8_t {
  kOrderedDict,
  kRebuildTensor,
  kRebuildTensorV2,
  kRebuildParameter,
  kRebuildParameterWithState,
  kStorageType,  // Obj::dtype holds the storage's dtype
};

struct Obj {
  Kind kind = Kind::kNone;
  Global global = Global::kOrderedDict;
  TorchDType dtype = TorchDType::kF32;
  uint32_t depth = 0;           // container nesting
  int64_t i = 0;                // kInt, kBool; kStorage/kTensor: index into the state tables
  uint64_t view_offset = 0;     // kStorage: element offset of a legacy storage view
  double f = 0;                 // kFloat
  std::string s;                // kStr, kBytes, kBigInt (little-endian two's complement bytes)
  std::vector<uint32_t> items;  // kTuple, kList; kDict: key, value, key, value...
};

enum class Mode : uint8_t {
  kPlain,       // no globals or persistent ids (legacy header pickles, storage key list)
  kStateZip,    // state dict, 5-element persistent ids
  kStateLegacy  // state dict, 6-element persistent ids
};

class Machine {
 public:
  Machine(const std::string& file, ByteSpan pickle, uint64_t base_offset, Mode mode)
      : file_(file), data_(pickle), base_(base_offset), mode_(mode) {}
  // Runs to STOP; returns the index of the resulting object. *consumed = bytes through STOP.
  Result<uint32_t> run(uint64_t* consumed);
  const Obj& obj(uint32_t index) const { return objs_[index]; }
  // Converts the result of run() into the state dict (top object must be a dict of tensors).
  Result<PickledStateDict> state_dict(uint32_t root);

 private:
  Status fail(uint64_t pos, const std::string& what) const;
  Result<uint32_t> make(Obj obj, uint64_t pos);
  Status push(uint32_t index, uint64_t pos);
  Result<uint32_t> pop(uint64_t pos, const char* op);
  Result<std::vector<uint32_t>> pop_mark(uint64_t pos, const char* op);
  Status add_child(uint32_t parent, uint32_t child, uint64_t pos);
  Result<uint32_t> resolve_global(const std::string& module, const std::string& name, uint64_t pos, const char* op);
  Result<uint32_t> persistent_load(uint32_t pid, uint64_t pos);
  Result<uint32_t> reduce(uint32_t callable, uint32_t args, uint64_t pos);
  Result<uint32_t> rebuild_tensor(const std::vector<uint32_t>& args, bool v2, uint64_t pos);
  Result<std::vector<uint64_t>> int_tuple(uint32_t index, const char* what, uint64_t pos);

  const std::string& file_;
  ByteSpan data_;
  uint64_t base_;
  Mode mode_;
  std::vector<Obj> objs_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::vector<int64_t> memo_;  // -1 = unset
  PickledStateDict state_;
  size_t memo_count_ = 0;
};

}  // namespace qmodel::converter::pickle
