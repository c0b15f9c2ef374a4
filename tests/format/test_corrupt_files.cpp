// The malformed-file table (style.md §3.6): one row per verification rule, each built in code from a
// valid model, each asserting the StatusCode and a piece of the message (and the tensor it names).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <ostream>

#include "format_test_util.h"

namespace qmodel::format::test {
namespace {

constexpr size_t kNf4 = 3;     // index of the plain NF4 tensor in make_test_model()
constexpr size_t kNf4Dq = 4;   // NF4 + double quant
constexpr size_t kInt8 = 7;
constexpr const char* kNf4Name = "model.layers.0.self_attn.q_proj.weight";

using Image = std::vector<uint8_t>;

void put_u32(Image& img, size_t at, uint32_t v) { std::memcpy(&img[at], &v, 4); }
void put_u64(Image& img, size_t at, uint64_t v) { std::memcpy(&img[at], &v, 8); }
uint64_t header_bytes_of(const Image& img) { return decode_preamble(img.data()).header_bytes; }

// Rewrites the header bytes and recomputes the preamble's checksum, so the next check sees them.
void rewrite_header(Image& img, const std::function<void(uint8_t*, size_t)>& edit) {
  const size_t n = static_cast<size_t>(header_bytes_of(img));
  edit(&img[kPreambleBytes], n);
  put_u64(img, kPreambleHeaderXxh3Offset, internal::xxh3_of(ByteSpan(&img[kPreambleBytes], n)));
}

struct Row {
  const char* name;
  std::function<Image()> build;
  StatusCode code;
  const char* message;   // substring of the error message
  const char* tensor;    // tensor the message must name, or nullptr
};

// gtest prints parameters on failure; the row name is what identifies one.
void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

Image model_with(const std::function<void(TestModel&)>& corrupt) { return build_image(make_test_model(), corrupt); }
Image image_with(const std::function<void(Image&)>& corrupt) {
  Image img = build_image(make_test_model());
  corrupt(img);
  return img;
}

std::vector<Row> rows() {
  const float kNan = std::numeric_limits<float>::quiet_NaN();
  return {
      // ---- preamble and header bounds ----
      {"truncated", [] { return image_with([](Image& i) { i.resize(20); }); }, StatusCode::kCorruptFile,
       "truncated", nullptr},
      {"bad_magic", [] { return image_with([](Image& i) { i[1] = 'X'; }); }, StatusCode::kCorruptFile, "bad magic",
       nullptr},
      {"unknown_version", [] { return image_with([](Image& i) { put_u32(i, kPreambleVersionOffset, 3); }); },
       StatusCode::kUnsupported, "format version 3 not supported (supported: 1, 2)", nullptr},
      {"preamble_bytes", [] { return image_with([](Image& i) { put_u32(i, kPreambleBytesOffset, 48); }); },
       StatusCode::kCorruptFile, "preamble_bytes is 48", nullptr},
      {"header_over_cap",
       [] { return image_with([](Image& i) { put_u64(i, kPreambleHeaderBytesOffset, kMaxHeaderBytes + 1); }); },
       StatusCode::kCorruptFile, "exceeds the 64 MiB cap", nullptr},
      {"header_past_end",
       [] { return image_with([](Image& i) { put_u64(i, kPreambleHeaderBytesOffset, i.size()); }); },
       StatusCode::kCorruptFile, "header length past end of file", nullptr},
      {"header_checksum", [] { return image_with([](Image& i) { i[kPreambleBytes + 40] ^= 0x10; }); },
       StatusCode::kChecksumMismatch, "header checksum mismatch", nullptr},
      // ---- FlatBuffers verifier (checksum recomputed so the verifier is what catches it) ----
      {"flatbuffer_garbage",
       [] {
         return image_with([](Image& i) {
           rewrite_header(i, [](uint8_t* h, size_t n) {
             for (size_t k = 0; k < n; ++k) h[k] = static_cast<uint8_t>(0xA5 ^ (k * 7));
           });
         });
       },
       StatusCode::kCorruptFile, "FlatBuffer verification failed", nullptr},
      {"flatbuffer_wrong_identifier",
       [] { return image_with([](Image& i) { rewrite_header(i, [](uint8_t* h, size_t) { h[4] = 'X'; }); }); },
       StatusCode::kCorruptFile, "FlatBuffer verification failed", nullptr},
      {"flatbuffer_root_past_end",
       [] {
         return image_with([](Image& i) {
           rewrite_header(i, [](uint8_t* h, size_t) { std::memset(h, 0x7f, 4); });
         });
       },
       StatusCode::kCorruptFile, "FlatBuffer verification failed", nullptr},
      {"flatbuffer_empty", [] { return internal::build_raw_file(ByteSpan(), {}); }, StatusCode::kCorruptFile,
       "FlatBuffer verification failed", nullptr},
      // ---- semantic rules: model ----
      {"version_field_mismatch", [] { return model_with([](TestModel& m) { m.header.format_version = 7; }); },
       StatusCode::kCorruptFile, "format_version 7 differs from the preamble's 2", nullptr},
      {"alignment_not_pow2", [] { return model_with([](TestModel& m) { m.header.alignment = 96; }); },
       StatusCode::kCorruptFile, "alignment 96 is not a power of two", nullptr},
      {"alignment_too_small", [] { return model_with([](TestModel& m) { m.header.alignment = 32; }); },
       StatusCode::kCorruptFile, "alignment 32 is not a power of two >= 64", nullptr},
      {"quant_settings_enum",
       [] { return model_with([](TestModel& m) { m.header.quant_settings.compute_dtype = static_cast<ComputeDType>(3); }); },
       StatusCode::kCorruptFile, "quant_settings enum value out of range", nullptr},
      // ---- semantic rules: tensors ----
      {"empty_name", [] { return model_with([](TestModel& m) { m.header.tensors[1].name.clear(); }); },
       StatusCode::kCorruptFile, "tensor #1 has an empty name", nullptr},
      {"duplicate_names",
       [] { return model_with([](TestModel& m) { m.header.tensors[2].name = m.header.tensors[0].name; }); },
       StatusCode::kCorruptFile, "duplicate tensor name", "model.embed_tokens.weight"},
      {"storage_enum",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].storage = static_cast<StorageType>(9); }); },
       StatusCode::kCorruptFile, "storage enum value 9 out of range", kNf4Name},
      {"source_dtype_enum",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].source_dtype = static_cast<SourceDType>(3); }); },
       StatusCode::kCorruptFile, "source_dtype enum value 3 out of range", kNf4Name},
      {"layout_enum",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].layout = static_cast<Layout>(1); }); },
       StatusCode::kCorruptFile, "layout enum value 1 out of range", kNf4Name},
      {"blob_role_enum",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].blobs[1].role = static_cast<BlobRole>(5); }); },
       StatusCode::kCorruptFile, "role enum value 5 out of range", kNf4Name},
      {"tensor_role_enum",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].role = static_cast<TensorRole>(200); }); },
       StatusCode::kCorruptFile, "role enum value 200 out of range", kNf4Name},
      {"layer_beyond_config",
       [] {
         return model_with([](TestModel& m) {
           m.header.config.n_layers = 2;
           m.header.tensors[kNf4].role = TensorRole::kQ;
           m.header.tensors[kNf4].layer = 2;
         });
       },
       StatusCode::kCorruptFile, "role q has layer 2, outside 0..2", kNf4Name},
      {"model_role_with_layer",
       [] {
         return model_with([](TestModel& m) {
           m.header.tensors[kNf4].role = TensorRole::kLmHead;
           m.header.tensors[kNf4].layer = 0;
         });
       },
       StatusCode::kCorruptFile, "role lm_head is not per block but has layer 0", kNf4Name},
      {"duplicate_role",
       [] {
         return model_with([](TestModel& m) {
           m.header.tensors[0].role = TensorRole::kLmHead;
           m.header.tensors[kNf4].role = TensorRole::kLmHead;
         });
       },
       StatusCode::kCorruptFile, "a second tensor with role lm_head", kNf4Name},
      {"architecture_enum",
       [] { return model_with([](TestModel& m) { m.header.arch.qkv = static_cast<QkvLayout>(4); }); },
       StatusCode::kCorruptFile, "architecture enum value out of range", nullptr},
      {"compression_enum",
       [] {
         return model_with([](TestModel& m) { m.header.tensors[kNf4].blobs[0].compression = static_cast<Compression>(2); });
       },
       StatusCode::kCorruptFile, "compression enum value 2 out of range", kNf4Name},
      {"rank_zero", [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].shape.clear(); }); },
       StatusCode::kCorruptFile, "rank 0 outside 1..4", kNf4Name},
      {"rank_five", [] { return model_with([](TestModel& m) { m.header.tensors[2].shape.push_back(1); }); },
       StatusCode::kCorruptFile, "rank 5 outside 1..4", "model.rank4.weight"},
      {"zero_dim", [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].shape[1] = 0; }); },
       StatusCode::kCorruptFile, "dim 1 is zero", kNf4Name},
      {"element_count_overflow",
       [] { return model_with([](TestModel& m) { m.header.tensors[0].shape = {1ull << 32, 1ull << 32, 2}; }); },
       StatusCode::kCorruptFile, "overflows", "model.embed_tokens.weight"},
      {"byte_size_overflow",
       [] { return model_with([](TestModel& m) { m.header.tensors[1].shape = {1ull << 63}; }); },
       StatusCode::kCorruptFile, "byte size overflows", "model.norm.weight"},
      {"size_not_matching_shape",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].shape[0] = 8; }); },
       StatusCode::kCorruptFile, "raw size 116 does not match 132 expected for NF4 shape [8, 33]", kNf4Name},
      {"size_not_matching_storage",
       [] { return model_with([](TestModel& m) { m.header.tensors[0].storage = StorageType::kF32; }); },
       StatusCode::kCorruptFile, "raw size 1024 does not match 2048 expected for F32", "model.embed_tokens.weight"},
      {"nested_absmax_size",
       [] {
         return model_with([](TestModel& m) {
           BlobRef& b = m.header.tensors[kNf4Dq].blobs[2];
           b.raw_size = b.stored_size = 8;
         });
       },
       StatusCode::kCorruptFile, "(nested_absmax) raw size 8 does not match 4", "model.layers.0.self_attn.k_proj.weight"},
      {"row_scale_size",
       [] {
         return model_with([](TestModel& m) {
           BlobRef& b = m.header.tensors[kInt8].blobs[1];
           b.raw_size = b.stored_size = 36;
         });
       },
       StatusCode::kCorruptFile, "(row_scale) raw size 36 does not match 32", "model.layers.0.self_attn.o_proj.weight"},
      {"stored_size_differs_uncompressed",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].blobs[0].stored_size = 100; }); },
       StatusCode::kCorruptFile, "uncompressed but stored size 100", kNf4Name},
      {"int8_rank", [] { return model_with([](TestModel& m) { m.header.tensors[kInt8].shape = {8, 4, 6}; }); },
       StatusCode::kCorruptFile, "INT8 storage needs rank 2", "model.layers.0.self_attn.o_proj.weight"},
      {"block_size_invalid", [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].quant.block_size = 48; }); },
       StatusCode::kCorruptFile, "block size 48 invalid for NF4", kNf4Name},
      {"block_size_zero", [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].quant.block_size = 0; }); },
       StatusCode::kCorruptFile, "block size 0 invalid for NF4", kNf4Name},
      {"block_size_one", [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].quant.block_size = 1; }); },
       StatusCode::kCorruptFile, "block size 1 invalid for NF4", kNf4Name},
      {"block_size_too_large",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].quant.block_size = 8192; }); },
       StatusCode::kCorruptFile, "block size 8192 invalid", kNf4Name},
      {"code_table_size", [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].quant.code_table.pop_back(); }); },
       StatusCode::kCorruptFile, "code table has 15 entries, expected 16", kNf4Name},
      {"code_table_nan",
       [kNan] { return model_with([kNan](TestModel& m) { m.header.tensors[kNf4].quant.code_table[3] = kNan; }); },
       StatusCode::kCorruptFile, "code table holds a non-finite value", kNf4Name},
      {"nested_block_size",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4Dq].quant.nested_block_size = 128; }); },
       StatusCode::kCorruptFile, "nested block size 128 invalid", "model.layers.0.self_attn.k_proj.weight"},
      {"nested_code_table_size",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4Dq].quant.nested_code_table.resize(255); }); },
       StatusCode::kCorruptFile, "nested code table has 255 entries", "model.layers.0.self_attn.k_proj.weight"},
      {"nested_offset_inf",
       [] {
         return model_with([](TestModel& m) {
           m.header.tensors[kNf4Dq].quant.nested_offset = std::numeric_limits<float>::infinity();
         });
       },
       StatusCode::kCorruptFile, "non-finite", "model.layers.0.self_attn.k_proj.weight"},
      {"quant_params_on_float",
       [] { return model_with([](TestModel& m) { m.header.tensors[0].quant.block_size = 64; }); },
       StatusCode::kCorruptFile, "4-bit quant params set on a BF16 tensor", "model.embed_tokens.weight"},
      {"missing_blob", [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].blobs.pop_back(); }); },
       StatusCode::kCorruptFile, "NF4 tensor has 1 blobs, expected 2", kNf4Name},
      {"double_quant_without_nested_blobs",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4Dq].blobs.pop_back(); }); },
       StatusCode::kCorruptFile, "NF4 (double quant) tensor has 2 blobs, expected 3", "model.layers.0.self_attn.k_proj.weight"},
      {"blob_role_order",
       [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].blobs[1].role = BlobRole::kAbsmaxCodes; }); },
       StatusCode::kCorruptFile, "has role absmax_codes, expected absmax", kNf4Name},
      // ---- semantic rules: placement ----
      {"misaligned_offset", [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].blobs[1].offset += 8; }); },
       StatusCode::kCorruptFile, "offset is misaligned", kNf4Name},
      {"blob_inside_header", [] { return model_with([](TestModel& m) { m.header.tensors[kNf4].blobs[0].offset = 64; }); },
       StatusCode::kCorruptFile, "starts inside the preamble or header", kNf4Name},
      {"blob_past_end",
       [] { return model_with([](TestModel& m) { m.header.tensors[kInt8].blobs[1].offset = 1ull << 30; }); },
       StatusCode::kCorruptFile, "runs past end of file", "model.layers.0.self_attn.o_proj.weight"},
      {"blob_end_overflows",
       [] { return model_with([](TestModel& m) { m.header.tensors[kInt8].blobs[1].offset = ~uint64_t{63}; }); },
       StatusCode::kCorruptFile, "runs past end of file", "model.layers.0.self_attn.o_proj.weight"},
      {"overlapping_blobs",
       [] {
         return model_with([](TestModel& m) { m.header.tensors[kNf4].blobs[1].offset = m.header.tensors[kNf4].blobs[0].offset; });
       },
       StatusCode::kCorruptFile, "overlaps a blob of tensor", kNf4Name},
      {"overlap_across_tensors",
       [] { return model_with([](TestModel& m) { m.header.tensors[1].blobs[0].offset = m.header.tensors[0].blobs[0].offset + 64; }); },
       StatusCode::kCorruptFile, "overlaps a blob of tensor 'model.embed_tokens.weight'", nullptr},
      // ---- embedded files ----
      {"embedded_file_empty_name", [] { return model_with([](TestModel& m) { m.header.files[0].name.clear(); }); },
       StatusCode::kCorruptFile, "embedded file with an empty name", nullptr},
      {"embedded_file_duplicate",
       [] { return model_with([](TestModel& m) { m.header.files[1].name = m.header.files[0].name; }); },
       StatusCode::kCorruptFile, "duplicate embedded file 'config.json'", nullptr},
  };
}

class CorruptFiles : public ::testing::TestWithParam<Row> {};

TEST_P(CorruptFiles, IsRejectedWithItsOwnError) {
  const Row& row = GetParam();
  const Image img = row.build();
  auto file = ModelFile::open_memory("bad.qmodel", ByteSpan(img));
  ASSERT_FALSE(file.ok()) << row.name << " was accepted";
  const Status& st = file.status();
  EXPECT_EQ(st.code(), row.code) << st.to_string();
  EXPECT_NE(st.message().find(row.message), std::string::npos) << st.to_string();
  EXPECT_EQ(st.message().rfind("bad.qmodel: ", 0), 0u) << "names the file: " << st.to_string();
  if (row.tensor) {
    EXPECT_NE(st.message().find(std::string("tensor '") + row.tensor + "'"), std::string::npos) << st.to_string();
  }
  EXPECT_NE(st.message().find("at offset "), std::string::npos) << "names an offset: " << st.to_string();
}

INSTANTIATE_TEST_SUITE_P(Rules, CorruptFiles, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& row_info) { return std::string(row_info.param.name); });

// The table only means something if the untouched image is accepted.
TEST(CorruptFilesBaseline, PristineImageOpens) {
  const Image img = build_image(make_test_model());
  auto file = ModelFile::open_memory("good.qmodel", ByteSpan(img), OpenOptions{true});
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_EQ((*file)->header().tensors.size(), 8u);
}

TEST(CorruptFilesBlobs, ChecksumMismatchNamesTensorAndOffset) {
  TestModel model = make_test_model();
  Image img = build_image(model);
  auto good = ModelFile::open_memory("good.qmodel", ByteSpan(img));
  ASSERT_TRUE(good.ok());
  const BlobRef target = (*good)->header().tensors[kNf4].blobs[1];
  good = Status(StatusCode::kNotFound, "release");
  img[target.offset + 5] ^= 0x01;

  auto lazy = ModelFile::open_memory("bad.qmodel", ByteSpan(img));  // structure is still sound
  ASSERT_TRUE(lazy.ok()) << lazy.status().to_string();
  const Status st = (*lazy)->verify_checksums();
  EXPECT_EQ(st.code(), StatusCode::kChecksumMismatch);
  EXPECT_NE(st.message().find("blob checksum mismatch"), std::string::npos) << st.to_string();
  EXPECT_NE(st.message().find(std::string("tensor '") + kNf4Name + "' at offset " + std::to_string(target.offset)),
            std::string::npos)
      << st.to_string();

  auto eager = ModelFile::open_memory("bad.qmodel", ByteSpan(img), OpenOptions{true});
  ASSERT_FALSE(eager.ok());
  EXPECT_EQ(eager.status().code(), StatusCode::kChecksumMismatch);
}

TEST(CorruptFilesBlobs, NonZeroPaddingIsDetectedWithItsOffset) {
  const Image clean = build_image(make_test_model());
  auto good = ModelFile::open_memory("good.qmodel", ByteSpan(clean), OpenOptions{true});
  ASSERT_TRUE(good.ok()) << good.status().to_string();
  // The gap between the header and the first blob, a gap between two blobs, the end of the file.
  const BlobRef first = (*good)->header().tensors[0].blobs[0];
  const BlobRef nf4_data = (*good)->header().tensors[kNf4].blobs[0];
  const uint64_t header_end = kPreambleBytes + decode_preamble(clean.data()).header_bytes;
  good = Status(StatusCode::kNotFound, "release");
  std::vector<uint64_t> spots = {header_end + 3, first.offset - 1, nf4_data.offset + nf4_data.stored_size};
  Image tail = clean;
  tail.push_back(0);
  spots.push_back(tail.size() - 1);
  for (const uint64_t at : spots) {
    Image img = at < clean.size() ? clean : tail;
    ASSERT_LT(at, img.size());
    ASSERT_EQ(img[at], 0) << at;  // padding, not a blob byte
    img[at] = 0x5a;
    auto lazy = ModelFile::open_memory("pad.qmodel", ByteSpan(img));  // structure is sound
    ASSERT_TRUE(lazy.ok()) << lazy.status().to_string();
    const Status st = (*lazy)->verify_checksums();
    EXPECT_EQ(st.code(), StatusCode::kChecksumMismatch) << at;
    EXPECT_NE(st.message().find("non-zero byte 0x5a in padding"), std::string::npos) << st.to_string();
    EXPECT_NE(st.message().find("offset " + std::to_string(at)), std::string::npos) << st.to_string();
  }
  // Zero bytes appended after the last blob are padding too: still valid.
  auto padded = ModelFile::open_memory("tail.qmodel", ByteSpan(tail), OpenOptions{true});
  EXPECT_TRUE(padded.ok()) << padded.status().to_string();
}

TEST(CorruptFilesBlobs, BrokenZstdBlobFailsOnAccess) {
  // A blob that claims zstd but holds noise: structurally valid, rejected when decompressed.
  const Image img = build_image(make_test_model(), [](TestModel& m) {
    BlobRef& b = m.header.tensors[kNf4].blobs[1];
    b.compression = Compression::kZstd;
    b.stored_size = 16;
  });
  auto file = ModelFile::open_memory("bad.qmodel", ByteSpan(img));
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  auto bytes = (*file)->blob_bytes((*file)->header().tensors[kNf4].blobs[1]);
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(bytes.status().message().find("compressed blob"), std::string::npos) << bytes.status().to_string();
  EXPECT_NE(bytes.status().message().find(kNf4Name), std::string::npos);
}

// A few KB of "zstd" claiming a 64 GiB tensor: refused at open, before anything could be
// decompressed into an allocation of the claimed size.
TEST(CorruptFilesBlobs, CompressionRatioBeyondAnyModelIsRefusedAtOpen) {
  const Image img = build_image(make_test_model(), [](TestModel& m) {
    TensorInfo& t = m.header.tensors[1];  // model.norm.weight, F32, one data blob
    t.shape = {uint64_t{1} << 34};
    BlobRef& b = t.blobs[0];
    b.compression = Compression::kZstd;
    b.raw_size = uint64_t{4} << 34;
  });
  auto file = ModelFile::open_memory("ratio.qmodel", ByteSpan(img));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(file.status().message().find("compressed blobs claim 68719476736 bytes"), std::string::npos)
      << file.status().to_string();
}

TEST(CorruptFilesOnDisk, EmptyFileDirectoryAndMissingFile) {
  const std::string path = temp_path("empty");
  write_file(path, {});
  auto empty = ModelFile::open(path);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(empty.status().message().find("truncated: empty file"), std::string::npos) << empty.status().to_string();
  std::remove(path.c_str());

  auto dir = ModelFile::open(temp_dir());
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), StatusCode::kIoError);
  EXPECT_NE(dir.status().message().find("is a directory"), std::string::npos);

  auto missing = ModelFile::open(path + ".missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  EXPECT_NE(missing.status().message().find("cannot open"), std::string::npos);
}

TEST(CorruptFilesOnDisk, TruncatedFileOnDiskNamesThePath) {
  TestModel m = make_test_model();
  const std::string path = temp_path("model");
  std::remove(path.c_str());
  ASSERT_TRUE(write_test_model(path, WriterOptions{}, m).ok());
  Image bytes = read_file(path);
  bytes.resize(bytes.size() - 1);  // the last blob now runs past the end
  write_file(path, bytes);
  auto file = ModelFile::open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kCorruptFile);
  EXPECT_EQ(file.status().message().rfind(path + ": tensor '", 0), 0u) << file.status().to_string();
  EXPECT_NE(file.status().message().find("runs past end of file"), std::string::npos);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace qmodel::format::test
