// libFuzzer target for the .qmodel reader: every input goes through the full verification pipeline
// (checksums included), then again with its header checksum repaired; whatever is accepted has
// every blob fetched (zstd blobs are decompressed).
// Seeds: small valid files written by ModelWriter (NF4, FP4 + double quant, INT8, BF16, zstd).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "../../format/src/raw_file.h"  // internal::xxh3_of
#include "fuzz/fuzz_seeds.h"
#include "qmodel/format/preamble.h"
#include "qmodel/format/reader.h"
#include "qmodel/format/writer.h"

using namespace qmodel;
using namespace qmodel::format;

namespace {

void open_and_touch(ByteSpan bytes, bool verify_checksums) {
  auto file = ModelFile::open_memory("fuzz.qmodel", bytes, OpenOptions{verify_checksums});
  if (!file.ok()) return;
  for (const TensorInfo& t : (*file)->header().tensors) {
    for (const BlobRef& b : t.blobs) {
      auto blob = (*file)->blob_bytes(b);
      if (blob.ok() && !blob->empty()) (void)((*blob)[0] + (*blob)[blob->size() - 1]);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  open_and_touch(ByteSpan(data, size), /*verify_checksums=*/true);
  // The header checksum stops almost every mutation at step 5; a second pass with the checksum
  // recomputed lets mutations reach the FlatBuffers verifier, the semantic rules and zstd (blob
  // checksums off, so corrupted compressed blobs get decompressed).
  if (size < kPreambleBytes) return 0;
  const Preamble p = decode_preamble(data);
  if (p.header_bytes > size - kPreambleBytes) return 0;
  std::vector<uint8_t> fixed(data, data + size);
  const uint64_t sum = internal::xxh3_of(ByteSpan(fixed.data() + kPreambleBytes, static_cast<size_t>(p.header_bytes)));
  std::memcpy(fixed.data() + kPreambleHeaderXxh3Offset, &sum, sizeof(sum));  // little-endian host
  open_and_touch(ByteSpan(fixed), /*verify_checksums=*/false);
  return 0;
}

namespace {

TensorInfo tensor(const std::string& name, std::vector<uint64_t> shape, StorageType storage) {
  TensorInfo t;
  t.name = name;
  t.shape = std::move(shape);
  t.storage = storage;
  return t;
}

void make_4bit(TensorInfo& t, uint32_t block_size, bool double_quant) {
  const float* table = t.storage == StorageType::kNF4 ? kNf4CodeTable : kFp4CodeTable;
  t.quant.block_size = block_size;
  t.quant.code_table.assign(table, table + 16);
  if (double_quant) {
    t.quant.double_quant = true;
    t.quant.nested_block_size = kNestedBlockSize;
    t.quant.nested_code_table.assign(kDynamicMapSize, 0.5f);
  }
}

// Raw blob bytes for `t` in the order types.h lists them (deterministic, partly compressible).
std::vector<std::pair<BlobRole, std::vector<uint8_t>>> blobs_for(const TensorInfo& t) {
  const uint64_t n = t.n_elems();
  auto bytes = [](uint64_t size, uint8_t seed) {
    std::vector<uint8_t> v(static_cast<size_t>(size));
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(seed + (i * 37 % 11));
    return v;
  };
  if (is_float_storage(t.storage)) return {{BlobRole::kData, bytes(n * float_storage_bytes(t.storage), 1)}};
  if (t.storage == StorageType::kINT8) return {{BlobRole::kData, bytes(n, 2)}, {BlobRole::kRowScale, bytes(t.shape[0] * 4, 3)}};
  const uint64_t n_blocks = ceil_div(n, t.quant.block_size);
  if (t.quant.double_quant) {
    return {{BlobRole::kData, bytes(packed_4bit_bytes(n), 4)},
            {BlobRole::kAbsmaxCodes, bytes(n_blocks, 5)},
            {BlobRole::kNestedAbsmax, bytes(ceil_div(n_blocks, kNestedBlockSize) * 4, 6)}};
  }
  return {{BlobRole::kData, bytes(packed_4bit_bytes(n), 7)}, {BlobRole::kAbsmax, bytes(n_blocks * 4, 8)}};
}

std::string write_seed(ModelHeader header, Compression compression) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/qmodel_fuzz_seed_" + std::to_string(::getpid()) + ".qmodel";
  WriterOptions options;
  options.alignment = 64;
  options.compression = compression;
  options.overwrite = true;
  for (TensorInfo& t : header.tensors) t.blobs.resize(blobs_for(t).size());
  auto writer = ModelWriter::create(path, options, header);
  if (!writer.ok()) return {};
  for (TensorInfo& t : header.tensors) {
    const auto blobs = blobs_for(t);
    for (size_t i = 0; i < blobs.size(); ++i) {
      auto ref = (*writer)->append_blob(blobs[i].first, ByteSpan(blobs[i].second));
      if (!ref.ok()) return {};
      t.blobs[i] = *ref;
    }
  }
  if (!(*writer)->finish(header).ok()) return {};
  std::ifstream in(path, std::ios::binary);
  std::string out((std::istreambuf_iterator<char>(in)), {});
  std::remove(path.c_str());
  return out;
}

}  // namespace

std::vector<std::string> qmodel_fuzz_seeds() {
  ModelHeader quantized;
  quantized.config.architecture = "LlamaForCausalLM";
  quantized.files = {{"config.json", "{\"model_type\":\"llama\"}"}};
  quantized.tensors.push_back(tensor("nf4", {4, 24}, StorageType::kNF4));
  make_4bit(quantized.tensors.back(), 32, false);
  quantized.tensors.push_back(tensor("fp4_dq", {3, 50}, StorageType::kFP4));
  make_4bit(quantized.tensors.back(), 64, true);
  quantized.tensors.push_back(tensor("int8", {4, 8}, StorageType::kINT8));

  ModelHeader dense;
  dense.tensors.push_back(tensor("bf16", {2, 3, 4}, StorageType::kBF16));
  dense.tensors.push_back(tensor("f32", {5}, StorageType::kF32));

  std::vector<std::string> seeds;
  for (const std::string& s : {write_seed(quantized, Compression::kNone), write_seed(quantized, Compression::kZstd),
                               write_seed(dense, Compression::kNone), write_seed(ModelHeader{}, Compression::kNone)}) {
    if (!s.empty()) seeds.push_back(s);
  }
  return seeds;
}
