// Fuzz target: TorchFile::open_memory (zip directory, local headers, unpickler, storage bounds,
// legacy layout) on arbitrary bytes, then to_float over every accepted tensor so a wrong bounds
// check shows up as an out-of-bounds read under ASan.
#include <string>
#include <vector>

#include "fuzz/fuzz_seeds.h"
#include "qmodel/converter/torch_checkpoint.h"

namespace {

void put(std::string* s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string sbu(const std::string& s) { return std::string("\x8c") + static_cast<char>(s.size()) + s; }

std::string pickle(bool legacy, const char* stride) {
  return std::string("\x80\x02}(") + sbu("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" + sbu("storage") +
         "ctorch\nFloatStorage\n" + sbu("0") + sbu("cpu") + "K\x06" + (legacy ? "N" : "") + "tQK" + std::string(1, '\0') +
         "K\x02K\x03\x86" + stride + "\x86\x89" + "ccollections\nOrderedDict\n)RtRu.";
}

std::string zip(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out, central;
  for (const auto& [name, data] : files) {
    const uint64_t header = out.size();
    put(&out, 0x04034b50, 4), put(&out, 20, 2), put(&out, 0, 2), put(&out, 0, 2), put(&out, 0, 4), put(&out, 0, 4);
    put(&out, data.size(), 4), put(&out, data.size(), 4), put(&out, name.size(), 2), put(&out, 0, 2);
    out += name + data;
    put(&central, 0x02014b50, 4), put(&central, 20, 2), put(&central, 20, 2), put(&central, 0, 2), put(&central, 0, 2);
    put(&central, 0, 4), put(&central, 0, 4), put(&central, data.size(), 4), put(&central, data.size(), 4);
    put(&central, name.size(), 2), put(&central, 0, 2), put(&central, 0, 2), put(&central, 0, 2), put(&central, 0, 2);
    put(&central, 0, 4), put(&central, header, 4);
    central += name;
  }
  const uint64_t cd = out.size();
  out += central;
  put(&out, 0x06054b50, 4), put(&out, 0, 4), put(&out, files.size(), 2), put(&out, files.size(), 2);
  put(&out, central.size(), 4), put(&out, cd, 4), put(&out, 0, 2);
  return out;
}

std::string floats(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) put(&s, 0x3f800000u + static_cast<uint32_t>(i), 4);
  return s;
}

std::string legacy_file() {
  std::string out = std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  out += std::string("\x80\x02M\xe9\x03.", 6);
  out += "\x80\x02}(" + sbu("little_endian") + "\x88u.";
  out += pickle(true, "K\x01K\x02");
  out += "\x80\x02](" + sbu("0") + "e.";
  put(&out, 6, 8);
  return out + floats(6);
}

}  // namespace

std::vector<std::string> qmodel_fuzz_seeds() {
  return {
      zip({{"archive/data.pkl", pickle(false, "K\x03K\x01")}, {"archive/byteorder", "little"}, {"archive/data/0", floats(6)}}),
      zip({{"a/data.pkl", pickle(false, "K\x01K\x02")}, {"a/data/0", floats(6)}}),  // transposed view
      legacy_file(),
  };
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = qmodel::converter::TorchFile::open_memory("fuzz.bin", qmodel::ByteSpan(data, size));
  if (!file.ok()) return 0;
  std::vector<float> out;
  for (const qmodel::converter::TensorEntry& t : (*file)->tensors()) {
    const uint64_t n = t.n_elems();
    if (n > (1u << 20)) continue;
    out.resize(static_cast<size_t>(n));
    qmodel::converter::to_float(t, 0, n, out.data());
  }
  return 0;
}
