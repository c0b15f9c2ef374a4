// Fuzz target: SafetensorsFile::open_memory on arbitrary bytes, then to_float over every accepted
// tensor (so a wrong size check shows up as an out-of-bounds read under ASan).
#include <string>
#include <vector>

#include "fuzz/fuzz_seeds.h"
#include "qmodel/converter/safetensors.h"

namespace {

std::string with_length(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((static_cast<uint64_t>(header.size()) >> (8 * i)) & 0xff);
  return out + header + data;
}

}  // namespace

std::vector<std::string> qmodel_fuzz_seeds() {
  return {
      with_length(R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})",
                  std::string(16, '\x3f')),
      with_length(R"({"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"F16","shape":[],"data_offsets":[6,8]},)"
                  R"("e":{"dtype":"F32","shape":[0,4],"data_offsets":[8,8]}}    )",
                  std::string("\x80\x3f\x00\x40\x7f\x7f\x00\x3c", 8)),
      with_length(R"({"i":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}})", "abcd"),
      with_length("{}", ""),
  };
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = qmodel::converter::SafetensorsFile::open_memory("fuzz.safetensors", qmodel::ByteSpan(data, size));
  if (!file.ok()) return 0;
  std::vector<float> out;
  for (const qmodel::converter::TensorEntry& t : (*file)->tensors()) {
    const uint64_t n = t.n_elems();
    if (n > (1u << 20)) continue;  // bytes are in the input, so this only bounds the output buffer
    out.resize(static_cast<size_t>(n));
    qmodel::converter::to_float(t, 0, n, out.data());
  }
  return 0;
}
