// Write -> read round trips through ModelWriter and ModelFile: every storage type, compression on
// and off, every header field, embedded files, blob bytes, and byte-identical output.
#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include "format_test_util.h"

namespace qmodel::format::test {
namespace {

void check_round_trip(Compression compression) {
  TestModel m = make_test_model();
  WriterOptions options;
  options.compression = compression;
  const std::string path = temp_path("model");
  std::remove(path.c_str());
  ASSERT_TRUE(write_test_model(path, options, m).ok());

  auto file = ModelFile::open(path, OpenOptions{/*verify_checksums=*/true});
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const ModelHeader& h = (*file)->header();
  m.header.alignment = kDefaultAlignment;
  m.header.format_version = kFormatVersion;
  expect_header_eq(h, m.header);
  ASSERT_EQ(h.find_file("tokenizer.json")->contents, m.header.files[1].contents);
  EXPECT_EQ(h.find_file("missing.json"), nullptr);

  bool any_compressed = false;
  bool any_stored = false;
  for (size_t t = 0; t < h.tensors.size(); ++t) {
    const TensorInfo& info = h.tensors[t];
    EXPECT_EQ(h.find_tensor(info.name), &info);
    for (size_t b = 0; b < info.blobs.size(); ++b) {
      const BlobRef& ref = info.blobs[b];
      EXPECT_EQ(ref.offset % kDefaultAlignment, 0u);
      (ref.compression == Compression::kZstd ? any_compressed : any_stored) = true;
      auto bytes = (*file)->blob_bytes(ref);
      ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
      const std::vector<uint8_t> got(bytes->begin(), bytes->end());
      EXPECT_EQ(got, m.blob_data[t][b]) << info.name << " blob " << b;
      if (ref.compression == Compression::kNone) {
        EXPECT_EQ(bytes->data(), (*file)->file_bytes().data() + ref.offset) << "uncompressed blobs are zero-copy";
      }
    }
  }
  EXPECT_TRUE(any_stored);  // noise never compresses
  EXPECT_EQ(any_compressed, compression == Compression::kZstd);
  std::remove(path.c_str());
}

TEST(RoundTrip, EveryStorageTypeUncompressed) { check_round_trip(Compression::kNone); }

TEST(RoundTrip, EveryStorageTypeZstd) { check_round_trip(Compression::kZstd); }

TEST(RoundTrip, HelpersFindTensorsAndBlobs) {
  TestModel m = make_test_model();
  const TensorInfo* t = m.header.find_tensor("model.layers.0.mlp.up_proj.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->n_elems(), 128u * 160u);
  EXPECT_EQ(t->find_blob(BlobRole::kNestedAbsmax), &t->blobs[2]);
  EXPECT_EQ(t->find_blob(BlobRole::kAbsmax), nullptr);
  EXPECT_EQ(m.header.find_tensor("nope"), nullptr);
}

TEST(RoundTrip, IdenticalInputsGiveIdenticalBytes) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    WriterOptions options;
    options.compression = c;
    const std::string a = temp_path("a");
    const std::string b = temp_path("b");
    std::remove(a.c_str());
    std::remove(b.c_str());
    TestModel ma = make_test_model();
    TestModel mb = make_test_model();
    ASSERT_TRUE(write_test_model(a, options, ma).ok());
    ASSERT_TRUE(write_test_model(b, options, mb).ok());
    const std::vector<uint8_t> bytes_a = read_file(a);
    EXPECT_GT(bytes_a.size(), 0u);
    EXPECT_TRUE(bytes_a == read_file(b));
    std::remove(a.c_str());
    std::remove(b.c_str());
  }
}

TEST(RoundTrip, OpenMemoryMatchesOpenAndCopesWithUnalignedBytes) {
  TestModel m = make_test_model();
  const std::string path = temp_path("model");
  std::remove(path.c_str());
  ASSERT_TRUE(write_test_model(path, WriterOptions{}, m).ok());
  const std::vector<uint8_t> bytes = read_file(path);
  std::remove(path.c_str());
  // Shift by one byte so the FlatBuffer is misaligned in memory: the reader must copy, not misread.
  std::vector<uint8_t> shifted(bytes.size() + 1);
  std::copy(bytes.begin(), bytes.end(), shifted.begin() + 1);
  auto file = ModelFile::open_memory("mem.qmodel", ByteSpan(shifted.data() + 1, bytes.size()),
                                     OpenOptions{/*verify_checksums=*/true});
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_EQ((*file)->path(), "mem.qmodel");
  m.header.alignment = kDefaultAlignment;
  expect_header_eq((*file)->header(), m.header);
}

TEST(RoundTrip, ConcurrentDecompressionReturnsOneCopy) {
  TestModel m = make_test_model();
  WriterOptions options;
  options.compression = Compression::kZstd;
  const std::string path = temp_path("model");
  std::remove(path.c_str());
  ASSERT_TRUE(write_test_model(path, options, m).ok());
  auto file = ModelFile::open(path);
  ASSERT_TRUE(file.ok());
  const BlobRef* ref = nullptr;
  for (const TensorInfo& t : (*file)->header().tensors) {
    for (const BlobRef& b : t.blobs) {
      if (b.compression == Compression::kZstd) ref = &b;
    }
  }
  ASSERT_NE(ref, nullptr);
  std::vector<const uint8_t*> seen(4, nullptr);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] {
      auto bytes = (*file)->blob_bytes(*ref);
      if (bytes.ok()) seen[i] = bytes->data();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const uint8_t* p : seen) EXPECT_EQ(p, seen[0]);
  EXPECT_NE(seen[0], nullptr);
  std::remove(path.c_str());
}

TEST(RoundTrip, ForeignBlobRefIsRejected) {
  TestModel m = make_test_model();
  const std::string path = temp_path("model");
  std::remove(path.c_str());
  ASSERT_TRUE(write_test_model(path, WriterOptions{}, m).ok());
  auto file = ModelFile::open(path);
  ASSERT_TRUE(file.ok());
  BlobRef forged = (*file)->header().tensors[0].blobs[0];
  forged.stored_size += 4096;
  auto bytes = (*file)->blob_bytes(forged);
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bytes.status().message().find("not a blob of this file"), std::string::npos);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace qmodel::format::test
