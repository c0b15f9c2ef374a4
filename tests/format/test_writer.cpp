// ModelWriter behaviour: atomic publish, overwrite policy, cleanup of the temporary file, option and
// header validation, the header reservation.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "format_test_util.h"
#include "support/temp_dir.h"

namespace qmodel::format::test {
namespace {

// A fresh empty directory per test, so "no stray files" can be checked by listing it.
class WriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = temp_dir() + "/qmodel_writer_XXXXXX";
    ASSERT_NE(::mkdtemp(&templ[0]), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    for (const std::string& name : entries()) std::remove((dir_ + "/" + name).c_str());
    ::rmdir(dir_.c_str());
  }
  std::vector<std::string> entries() const { return ::qmodel::testing::directory_entries(dir_); }
  std::string dir_;
};

TEST_F(WriterTest, PublishesOnlyTheTargetFile) {
  TestModel m = make_test_model();
  const std::string path = dir_ + "/out.qmodel";
  ASSERT_TRUE(write_test_model(path, WriterOptions{}, m).ok());
  EXPECT_EQ(entries(), std::vector<std::string>{"out.qmodel"});
  EXPECT_TRUE(ModelFile::open(path).ok());
}

TEST_F(WriterTest, RefusesExistingPathWithoutOverwrite) {
  const std::string path = dir_ + "/out.qmodel";
  write_file(path, {1, 2, 3});
  TestModel m = make_test_model();
  auto w = ModelWriter::create(path, WriterOptions{}, m.header);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(w.status().message().find("already exists"), std::string::npos);
  EXPECT_EQ(read_file(path), (std::vector<uint8_t>{1, 2, 3}));

  WriterOptions options;
  options.overwrite = true;
  ASSERT_TRUE(write_test_model(path, options, m).ok());
  EXPECT_TRUE(ModelFile::open(path).ok());
  EXPECT_EQ(entries(), std::vector<std::string>{"out.qmodel"});
}

TEST_F(WriterTest, RefusesPathCreatedWhileWriting) {
  const std::string path = dir_ + "/out.qmodel";
  TestModel m = make_test_model();
  auto w = ModelWriter::create(path, WriterOptions{}, m.header);
  ASSERT_TRUE(w.ok());
  write_file(path, {9});
  for (size_t t = 0; t < m.header.tensors.size(); ++t) {
    for (size_t b = 0; b < m.header.tensors[t].blobs.size(); ++b) {
      auto ref = (*w)->append_blob(m.header.tensors[t].blobs[b].role, ByteSpan(m.blob_data[t][b]));
      ASSERT_TRUE(ref.ok());
      m.header.tensors[t].blobs[b] = *ref;
    }
  }
  const Status st = (*w)->finish(m.header);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(read_file(path), std::vector<uint8_t>{9});
  w = Status(StatusCode::kNotFound, "drop the writer");
  EXPECT_EQ(entries(), std::vector<std::string>{"out.qmodel"});
}

TEST_F(WriterTest, DestructorWithoutFinishLeavesNothing) {
  const std::string path = dir_ + "/out.qmodel";
  TestModel m = make_test_model();
  {
    auto w = ModelWriter::create(path, WriterOptions{}, m.header);
    ASSERT_TRUE(w.ok());
    // An unnamed O_TMPFILE inode, or where the file system lacks it a hidden temporary file.
    ASSERT_LE(entries().size(), 1u);
    if (!entries().empty()) EXPECT_EQ(entries()[0].rfind(".out.qmodel.tmp.", 0), 0u) << entries()[0];
    ASSERT_TRUE((*w)->append_blob(BlobRole::kData, ByteSpan(m.blob_data[0][0])).ok());
    EXPECT_GT((*w)->bytes_written(), 0u);
  }
  EXPECT_TRUE(entries().empty());
}

// A conversion killed mid-write (no destructors run) leaves nothing: the data lives in an unnamed
// O_TMPFILE inode until finish() links it in.
TEST_F(WriterTest, KilledWriterLeavesNothing) {
  const int probe = ::open(dir_.c_str(), O_TMPFILE | O_WRONLY, 0600);
  if (probe < 0) GTEST_SKIP() << "no O_TMPFILE on " << dir_ << ": the named temporary file would stay";
  ::close(probe);
  const std::string path = dir_ + "/out.qmodel";
  TestModel m = make_test_model();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto w = ModelWriter::create(path, WriterOptions{}, m.header);
    if (w.ok()) (void)(*w)->append_blob(BlobRole::kData, ByteSpan(m.blob_data[0][0]));
    ::_exit(w.ok() ? 0 : 1);  // like a kill: no destructors, no cleanup
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(entries().empty());
}

TEST_F(WriterTest, RejectsBadOptions) {
  TestModel m = make_test_model();
  for (uint64_t alignment : {uint64_t{0}, uint64_t{32}, uint64_t{100}, uint64_t{4097}}) {
    WriterOptions options;
    options.alignment = alignment;
    auto w = ModelWriter::create(dir_ + "/out.qmodel", options, m.header);
    ASSERT_FALSE(w.ok()) << alignment;
    EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(w.status().message().find("alignment"), std::string::npos);
  }
  WriterOptions options;
  options.compression = Compression::kZstd;
  options.zstd_level = 1000;
  EXPECT_EQ(ModelWriter::create(dir_ + "/out.qmodel", options, m.header).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ModelWriter::create(dir_, WriterOptions{}, m.header).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(entries().empty());
}

TEST_F(WriterTest, BlobsAreAlignedAndCounted) {
  WriterOptions options;
  options.alignment = 256;
  TestModel m = make_test_model();
  auto w = ModelWriter::create(dir_ + "/out.qmodel", options, m.header);
  ASSERT_TRUE(w.ok());
  const std::vector<uint8_t> bytes(300, 7);
  auto first = (*w)->append_blob(BlobRole::kData, ByteSpan(bytes));
  auto second = (*w)->append_blob(BlobRole::kData, ByteSpan(bytes));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->offset % 256, 0u);
  EXPECT_EQ(second->offset, first->offset + 512);  // 300 bytes rounded up to the alignment
  EXPECT_EQ((*w)->bytes_written(), 512u + 300u);
  EXPECT_EQ(first->xxh3, internal::xxh3_of(ByteSpan(bytes)));
  EXPECT_EQ((*w)->append_blob(BlobRole::kData, ByteSpan()).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(WriterTest, HeaderLargerThanReservationFails) {
  const std::string path = dir_ + "/out.qmodel";
  TestModel m = make_test_model();
  auto w = ModelWriter::create(path, WriterOptions{}, m.header);
  ASSERT_TRUE(w.ok());
  m.header.provenance.options = std::string(64 * 1024, 'o');  // far beyond the skeleton's slack
  const Status st = (*w)->finish(m.header);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("reserved"), std::string::npos) << st.message();
  EXPECT_EQ((*w)->finish(m.header).code(), StatusCode::kInvalidArgument);  // dead after an error
  w = Status(StatusCode::kNotFound, "drop the writer");
  EXPECT_TRUE(entries().empty());
}

TEST_F(WriterTest, InvalidHeaderIsNeverPublished) {
  const std::string path = dir_ + "/out.qmodel";
  TestModel m = make_test_model();
  Status st = write_test_model(path, WriterOptions{}, m);
  ASSERT_TRUE(st.ok());
  std::remove(path.c_str());
  // Same model, but the finished header lies about a shape: finish() must refuse it.
  auto w = ModelWriter::create(path, WriterOptions{}, m.header);
  ASSERT_TRUE(w.ok());
  for (size_t t = 0; t < m.header.tensors.size(); ++t) {
    for (size_t b = 0; b < m.header.tensors[t].blobs.size(); ++b) {
      auto ref = (*w)->append_blob(m.header.tensors[t].blobs[b].role, ByteSpan(m.blob_data[t][b]));
      ASSERT_TRUE(ref.ok());
      m.header.tensors[t].blobs[b] = *ref;
    }
  }
  m.header.tensors[0].shape[0] += 1;
  st = (*w)->finish(m.header);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("does not match"), std::string::npos) << st.message();
  w = Status(StatusCode::kNotFound, "drop the writer");
  EXPECT_TRUE(entries().empty());
}

TEST_F(WriterTest, EmptyModelRoundTrips) {
  const std::string path = dir_ + "/empty.qmodel";
  ModelHeader header;
  auto w = ModelWriter::create(path, WriterOptions{}, header);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->finish(header).ok());
  const std::vector<uint8_t> late(8, 1);
  EXPECT_EQ((*w)->append_blob(BlobRole::kData, ByteSpan(late)).status().code(), StatusCode::kInvalidArgument);
  auto file = ModelFile::open(path, OpenOptions{true});
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_TRUE((*file)->header().tensors.empty());
}

}  // namespace
}  // namespace qmodel::format::test
