// Fuzz target: the restricted unpickler (unpickle_state_dict) on arbitrary bytes, in both persistent
// id flavours. It must never crash, execute, or describe a tensor whose size arithmetic overflowed.
#include <string>
#include <vector>

#include "fuzz/fuzz_seeds.h"
#include "qmodel/converter/torch_checkpoint.h"

namespace {

template <size_t N>
std::string lit(const char (&s)[N]) { return std::string(s, N - 1); }

std::string sbu(const std::string& s) { return std::string("\x8c") + static_cast<char>(s.size()) + s; }

std::string tensor_dict(bool legacy) {
  return std::string("\x80\x02}(") + sbu("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" + sbu("storage") +
         "ctorch\nFloatStorage\n" + sbu("0") + sbu("cpu") + "K\x06" + (legacy ? "N" : "") + "tQK" + std::string(1, '\0') +
         "K\x02K\x03\x86K\x03K\x01\x86\x89" + "ccollections\nOrderedDict\n)Rtq\x01R" + sbu("b") + "h\x01u.";
}

}  // namespace

std::vector<std::string> qmodel_fuzz_seeds() {
  return {
      tensor_dict(false),
      tensor_dict(true),
      lit("\x80\x02" "ccollections\nOrderedDict\nq\x00)Rq\x01."),
      lit("\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01" "a\x94]\x94(K\x01J\xff\xff\xff\xff" "e\x8c\x01" "bG?\xf0\x00\x00\x00\x00\x00\x00u."),
      lit("\x80\x02" "cposix\nsystem\nX\x02\x00\x00\x00idR."),
  };
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (auto flavor : {qmodel::converter::PickleFlavor::kZip, qmodel::converter::PickleFlavor::kLegacy}) {
    uint64_t consumed = 0;
    auto dict = qmodel::converter::unpickle_state_dict("fuzz.pkl", qmodel::ByteSpan(data, size), 0, flavor, &consumed);
    if (!dict.ok()) continue;
    if (consumed > size) __builtin_trap();
    for (const auto& t : dict->tensors) {
      if (t.storage >= dict->storages.size() || t.shape.size() != t.stride.size()) __builtin_trap();
    }
  }
  return 0;
}
