// SafetensorsFile: one malformed-header row per safetensors rule (exact StatusCode + message),
// valid files (scalars, empty tensors, metadata, padding), mmap-backed open/release, and exact
// F16/BF16 -> float conversion against half.h.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "qmodel/converter/safetensors.h"
#include "qmodel/format/half.h"

namespace qmodel::converter {
namespace {

// 8-byte little-endian length + header + data; `declared` overrides the length field.
std::string make_file(const std::string& header, const std::string& data, uint64_t declared = ~0ull) {
  const uint64_t n = declared == ~0ull ? header.size() : declared;
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

Result<std::unique_ptr<SafetensorsFile>> open_bytes(const std::string& bytes, const std::string& name = "t.safetensors") {
  return SafetensorsFile::open_memory(name, ByteSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

const std::string kF32x2 = R"("dtype":"F32","shape":[2])";

struct MalformedCase {
  const char* rule;
  std::string bytes;
  StatusCode code;
  std::vector<std::string> message_parts;  // each must appear in the message
};

std::vector<MalformedCase> malformed_cases() {
  const std::string d8(8, '\x01');
  return {
      {"too short", "abc", StatusCode::kCorruptFile, {"t.safetensors", "too short"}},
      {"header too large", make_file("{}", "", 100'000'001), StatusCode::kCorruptFile, {"exceeds the limit", "at offset 0"}},
      {"header past end", make_file("{}", "", 100), StatusCode::kCorruptFile, {"runs past the end"}},
      {"header length huge", make_file("{}", "", ~1ull), StatusCode::kCorruptFile, {"exceeds the limit"}},
      {"bad utf-8", make_file("{\"w\xff\":{}}", ""), StatusCode::kCorruptFile, {"not valid UTF-8", "at offset 11"}},
      {"overlong utf-8", make_file("{\"\xc0\xaf\":{}}", ""), StatusCode::kCorruptFile, {"not valid UTF-8"}},
      {"utf-16 surrogate", make_file("{\"\xed\xa0\x80\":{}}", ""), StatusCode::kCorruptFile, {"not valid UTF-8"}},
      {"empty header", make_file("", ""), StatusCode::kCorruptFile, {"not valid JSON"}},
      {"not json", make_file("{\"w\":", ""), StatusCode::kCorruptFile, {"not valid JSON"}},
      {"not an object", make_file("[1,2]", ""), StatusCode::kCorruptFile, {"must be a JSON object", "array"}},
      {"entry not an object", make_file(R"({"w":[1]})", ""), StatusCode::kCorruptFile, {"tensor 'w'", "must be an object"}},
      {"missing dtype", make_file(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", d8), StatusCode::kCorruptFile,
       {"tensor 'w'", "no 'dtype'"}},
      {"dtype not a string", make_file(R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", d8),
       StatusCode::kCorruptFile, {"'dtype' must be a string"}},
      {"unknown dtype", make_file(R"({"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", d8),
       StatusCode::kCorruptFile, {"tensor 'w'", "unknown dtype 'F33'"}},
      {"unsupported I8", make_file(R"({"w":{"dtype":"I8","shape":[8],"data_offsets":[0,8]}})", d8),
       StatusCode::kUnsupported, {"tensor 'w'", "dtype I8", "at offset"}},
      {"unsupported F64", make_file(R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", d8),
       StatusCode::kUnsupported, {"dtype F64"}},
      {"unsupported sub-byte F4", make_file(R"({"w":{"dtype":"F4","shape":[16],"data_offsets":[0,8]}})", d8),
       StatusCode::kUnsupported, {"dtype F4"}},
      {"missing shape", make_file(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", d8), StatusCode::kCorruptFile,
       {"no 'shape'"}},
      {"shape not an array", make_file(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", d8),
       StatusCode::kCorruptFile, {"'shape' must be an array", "string"}},
      {"negative dim", make_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8),
       StatusCode::kCorruptFile, {"'shape' must be an array"}},
      {"float dim", make_file(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", d8),
       StatusCode::kCorruptFile, {"'shape' must be an array"}},
      {"missing data_offsets", make_file("{\"w\":{" + kF32x2 + "}}", d8), StatusCode::kCorruptFile,
       {"no 'data_offsets'"}},
      {"data_offsets wrong arity", make_file("{\"w\":{" + kF32x2 + ",\"data_offsets\":[0,4,8]}}", d8),
       StatusCode::kCorruptFile, {"'data_offsets' must be [begin, end]"}},
      {"data_offsets negative", make_file("{\"w\":{" + kF32x2 + ",\"data_offsets\":[-1,8]}}", d8),
       StatusCode::kCorruptFile, {"'data_offsets' must be [begin, end]"}},
      {"end < begin", make_file("{\"w\":{" + kF32x2 + ",\"data_offsets\":[8,0]}}", d8), StatusCode::kCorruptFile,
       {"tensor 'w'", "end 0 < begin 8"}},
      {"size mismatch", make_file("{\"w\":{" + kF32x2 + ",\"data_offsets\":[0,4]}}", d8.substr(0, 4)),
       StatusCode::kCorruptFile, {"tensor 'w'", "span 4 bytes", "needs 8"}},
      {"shape product overflow",
       make_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,8]}})", d8),
       StatusCode::kCorruptFile, {"element count", "overflows 64 bits"}},
      {"byte size overflow", make_file(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})", d8),
       StatusCode::kCorruptFile, {"byte size", "overflows 64 bits"}},
      {"hole", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         std::string(12, '\0')),
       StatusCode::kCorruptFile, {"tensor 'b'", "hole of 4 bytes"}},
      {"hole at start", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8), StatusCode::kCorruptFile,
       {"tensor 'a'", "hole of 4 bytes"}},
      {"overlap", make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                            d8),
       StatusCode::kCorruptFile, {"tensor 'b'", "overlaps tensor 'a'"}},
      {"trailing bytes", make_file("{\"w\":{" + kF32x2 + ",\"data_offsets\":[0,8]}}", d8 + "xyz"),
       StatusCode::kCorruptFile, {"3 trailing bytes"}},
      {"data past end", make_file("{\"w\":{" + kF32x2 + ",\"data_offsets\":[0,8]}}", d8.substr(0, 6)),
       StatusCode::kCorruptFile, {"tensor 'w'", "past the end"}},
      {"duplicate tensor key",
       make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8),
       StatusCode::kCorruptFile, {"duplicate key 'w'"}},
      {"duplicate field key", make_file(R"({"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", d8),
       StatusCode::kCorruptFile, {"duplicate key 'dtype'"}},
      {"duplicate key via escape", make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"\u0077":{}})", d8),
       StatusCode::kCorruptFile, {"duplicate key 'w'"}},
      {"metadata not an object", make_file(R"({"__metadata__":"x"})", ""), StatusCode::kCorruptFile,
       {"'__metadata__' must be an object"}},
      {"metadata value not a string", make_file(R"({"__metadata__":{"format":"pt","n":1}})", ""), StatusCode::kCorruptFile,
       {"'__metadata__' must map strings to strings", "key 'n'"}},
      {"nesting too deep", make_file("{\"__metadata__\":" + std::string(100, '[') + std::string(100, ']') + "}", ""),
       StatusCode::kCorruptFile, {"nested deeper"}},
  };
}

TEST(SafetensorsFile, RejectsEveryMalformedRow) {
  for (const MalformedCase& c : malformed_cases()) {
    SCOPED_TRACE(c.rule);
    auto result = open_bytes(c.bytes);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), c.code) << result.status().to_string();
    for (const std::string& part : c.message_parts) {
      EXPECT_NE(result.status().message().find(part), std::string::npos)
          << "'" << part << "' not in: " << result.status().message();
    }
    EXPECT_NE(result.status().message().find("t.safetensors"), std::string::npos) << result.status().message();
  }
}

TEST(SafetensorsFile, RejectsEveryTruncation) {
  // Every proper prefix of a valid file is invalid (and must not crash).
  const std::string good = make_file("{\"w\":{" + kF32x2 + ",\"data_offsets\":[0,8]}}", std::string(8, '\x02'));
  ASSERT_TRUE(open_bytes(good).ok());
  for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(open_bytes(good.substr(0, n)).ok()) << n;
}

TEST(SafetensorsFile, ReadsValidFileInOffsetOrder) {
  // Names sort differently from offsets; header padded with spaces as the reference writer does.
  std::string header =
      R"({"__metadata__":{"format":"pt"},"z":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("a":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},"m":{"dtype":"F16","shape":[1,1],"data_offsets":[22,24]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string data(24, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i);
  const std::string bytes = make_file(header, data);
  auto file = open_bytes(bytes, "x.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const auto& t = (*file)->tensors();
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].name, "z");
  EXPECT_EQ(t[1].name, "a");
  EXPECT_EQ(t[2].name, "m");
  EXPECT_EQ(t[0].dtype, SourceDType::kF32);
  EXPECT_EQ(t[1].dtype, SourceDType::kBF16);
  EXPECT_EQ(t[2].dtype, SourceDType::kF16);
  EXPECT_EQ(t[0].shape, (std::vector<uint64_t>{2, 2}));
  EXPECT_EQ(t[0].n_elems(), 4u);
  EXPECT_EQ(t[1].n_elems(), 3u);
  EXPECT_EQ(t[1].file, "x.safetensors");
  EXPECT_EQ(t[1].file_offset, 8 + header.size() + 16);
  EXPECT_EQ(t[1].bytes.size(), 6u);
  EXPECT_EQ(t[1].bytes.data(), reinterpret_cast<const uint8_t*>(bytes.data()) + t[1].file_offset);
  EXPECT_EQ((*file)->data_offset(), 8 + header.size());
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
}

TEST(SafetensorsFile, AcceptsScalarsEmptyTensorsAndNoTensors) {
  const std::string header =
      R"({"e":{"dtype":"F16","shape":[0,5],"data_offsets":[0,0]},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("tail":{"dtype":"BF16","shape":[3,0],"data_offsets":[4,4]}})";
  const std::string bytes = make_file(header, std::string(4, '\0'));
  auto file = open_bytes(bytes);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const auto& t = (*file)->tensors();
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].name, "e");
  EXPECT_EQ(t[0].n_elems(), 0u);
  EXPECT_EQ(t[1].name, "s");
  EXPECT_TRUE(t[1].shape.empty());
  EXPECT_EQ(t[1].n_elems(), 1u);
  EXPECT_EQ(t[2].name, "tail");
  EXPECT_EQ(t[2].bytes.size(), 0u);

  auto empty = open_bytes(make_file("{}", ""));
  ASSERT_TRUE(empty.ok()) << empty.status().to_string();
  EXPECT_TRUE((*empty)->tensors().empty());
  auto only_metadata = open_bytes(make_file(std::string(R"({"__metadata__":{}})") + "  ", ""));
  ASSERT_TRUE(only_metadata.ok()) << only_metadata.status().to_string();
}

TEST(SafetensorsFile, OpensFromDiskAndReleasesPages) {
  char dir_template[] = "/tmp/qmodel_st_XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/w.safetensors";
  std::vector<float> values(4096);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) * 0.5f;
  std::string data(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  {
    std::ofstream out(path, std::ios::binary);
    out << make_file(R"({"w":{"dtype":"F32","shape":[64,64],"data_offsets":[0,16384]}})", data);
  }
  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const TensorEntry& w = (*file)->tensors().at(0);
  EXPECT_EQ(w.file, "w.safetensors");
  std::vector<float> got(values.size());
  to_float(w, 0, w.n_elems(), got.data());
  EXPECT_EQ(got, values);
  (*file)->release(w);  // pages dropped; the data must read back the same
  (*file)->prefetch(w);
  std::vector<float> again(values.size());
  to_float(w, 0, w.n_elems(), again.data());
  EXPECT_EQ(again, values);
  file = Status(StatusCode::kIoError, "closed");  // unmap before deleting
  std::remove(path.c_str());

  auto missing = SafetensorsFile::open(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
  auto a_dir = SafetensorsFile::open(dir_template);
  ASSERT_FALSE(a_dir.ok());
  EXPECT_EQ(a_dir.status().code(), StatusCode::kIoError);
  rmdir(dir_template);
}

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

TEST(ToFloat, F16IsBitExactForAllPatterns) {
  std::vector<uint8_t> src(65536 * 2);
  for (uint32_t h = 0; h < 65536; ++h) {
    src[2 * h] = static_cast<uint8_t>(h & 0xff);
    src[2 * h + 1] = static_cast<uint8_t>(h >> 8);
  }
  std::vector<float> out(65536);
  convert_to_float(SourceDType::kF16, src.data(), 65536, out.data());
  for (uint32_t h = 0; h < 65536; ++h) {
    ASSERT_EQ(bits_of(out[h]), bits_of(f16_to_float(static_cast<uint16_t>(h)))) << std::hex << h;
  }
  EXPECT_EQ(out[0x3c00], 1.0f);
  EXPECT_EQ(out[0x0001], 5.9604644775390625e-8f);  // smallest subnormal
  EXPECT_EQ(out[0xfbff], -65504.0f);
}

TEST(ToFloat, Bf16IsBitExactForAllPatterns) {
  std::vector<uint8_t> src(65536 * 2);
  for (uint32_t h = 0; h < 65536; ++h) {
    src[2 * h] = static_cast<uint8_t>(h & 0xff);
    src[2 * h + 1] = static_cast<uint8_t>(h >> 8);
  }
  std::vector<float> out(65536);
  convert_to_float(SourceDType::kBF16, src.data(), 65536, out.data());
  for (uint32_t h = 0; h < 65536; ++h) {
    ASSERT_EQ(bits_of(out[h]), bits_of(bf16_to_float(static_cast<uint16_t>(h)))) << std::hex << h;
  }
  EXPECT_EQ(out[0x3f80], 1.0f);
}

TEST(ToFloat, ReadsSubrangesAtUnalignedOffsets) {
  // A 5-byte header puts the data at offset 13: nothing may assume alignment.
  const std::vector<float> values = {1.5f, -2.25f, 3.0e-5f, 65504.0f, -0.0f, 7.0f};
  std::string bf16, f16, f32;
  for (float v : values) {
    const uint16_t b = float_to_bf16(v), h = float_to_f16(v);
    bf16 += std::string(reinterpret_cast<const char*>(&b), 2);
    f16 += std::string(reinterpret_cast<const char*>(&h), 2);
    f32 += std::string(reinterpret_cast<const char*>(&v), 4);
  }
  const std::string header = R"({"b":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
                             R"("h":{"dtype":"F16","shape":[6],"data_offsets":[12,24]},)"
                             R"("f":{"dtype":"F32","shape":[3,2],"data_offsets":[24,48]}})";
  const std::string bytes = make_file(header + " ", bf16 + f16 + f32);
  auto file = open_bytes(bytes);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  for (const TensorEntry& e : (*file)->tensors()) {
    SCOPED_TRACE(e.name);
    std::vector<float> out(3, 99.0f);
    to_float(e, 2, 3, out.data());
    for (size_t i = 0; i < 3; ++i) {
      const float v = values[2 + i];
      const float expected = e.dtype == SourceDType::kBF16  ? bf16_to_float(float_to_bf16(v))
                             : e.dtype == SourceDType::kF16 ? f16_to_float(float_to_f16(v))
                                                            : v;
      EXPECT_EQ(bits_of(out[i]), bits_of(expected)) << i;
    }
    to_float(e, 6, 0, out.data());  // empty range at the end is allowed
  }
}

TEST(SourceDType, NamesAndSizes) {
  EXPECT_STREQ(safetensors_dtype_name(SourceDType::kBF16), "BF16");
  EXPECT_EQ(source_dtype_size(SourceDType::kF32), 4u);
  EXPECT_EQ(source_dtype_size(SourceDType::kF16), 2u);
}

}  // namespace
}  // namespace qmodel::converter
