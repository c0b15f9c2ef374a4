// Ed25519 signatures (signing.h): key files and their errors, signed files that verify with their
// key and fail with another key, unsigned files where a key is required, any changed byte (also
// with every checksum recomputed, as an attacker would), and a signature moved to another file.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>

#include "../../format/src/raw_file.h"  // internal::xxh3_of
#include "format_test_util.h"
#include "qmodel/format/preamble.h"
#include "qmodel/format/signing.h"

namespace qmodel::format::test {
namespace {

class SigningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = generate_secret_key();
    auto b = generate_secret_key();
    ASSERT_TRUE(a.ok() && b.ok());
    key_ = a.value();
    other_ = b.value();
    signed_path_ = temp_path("signed");
    unsigned_path_ = temp_path("unsigned");
    WriterOptions options;
    options.signing_key = key_;
    TestModel m = make_test_model();
    ASSERT_TRUE(write_test_model(signed_path_, options, m).ok());
    TestModel u = make_test_model();
    ASSERT_TRUE(write_test_model(unsigned_path_, WriterOptions{}, u).ok());
  }
  void TearDown() override {
    std::remove(signed_path_.c_str());
    std::remove(unsigned_path_.c_str());
  }

  static OpenOptions trusting(const SecretKey& key) {
    OpenOptions o;
    o.trusted_key = key.public_key();
    return o;
  }
  // Opens `bytes` requiring `key`; returns the status.
  static Status open_trusting(const std::vector<uint8_t>& bytes, const SecretKey& key) {
    auto f = ModelFile::open_memory("mem.qmodel", ByteSpan(bytes), trusting(key));
    return f.ok() ? Status() : f.status();
  }

  SecretKey key_, other_;
  std::string signed_path_, unsigned_path_;
};

TEST_F(SigningTest, SignedFileVerifiesWithItsKeyOnly) {
  auto f = ModelFile::open(signed_path_, trusting(key_));
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  ASSERT_TRUE((*f)->signature().has_value());
  EXPECT_EQ((*f)->signature()->signer, key_.public_key());
  EXPECT_TRUE((*f)->verify_checksums().ok());  // the trailer is not "non-zero padding"

  auto wrong = ModelFile::open(signed_path_, trusting(other_));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kChecksumMismatch);
  EXPECT_NE(wrong.status().message().find("not by the trusted key " + other_.public_key().fingerprint()),
            std::string::npos)
      << wrong.status().message();
}

TEST_F(SigningTest, UnsignedFileOpensUnlessAKeyIsRequired) {
  auto plain = ModelFile::open(unsigned_path_);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE((*plain)->signature().has_value());
  auto required = ModelFile::open(unsigned_path_, trusting(key_));
  ASSERT_FALSE(required.ok());
  EXPECT_NE(required.status().message().find("not signed"), std::string::npos) << required.status().message();
  // A signed file opens where no key is asked for; the signer is reported, untrusted.
  auto signed_plain = ModelFile::open(signed_path_);
  ASSERT_TRUE(signed_plain.ok());
  EXPECT_TRUE((*signed_plain)->signature().has_value());
}

TEST_F(SigningTest, SignedAndUnsignedDifferOnlyByTheTrailer) {
  const std::vector<uint8_t> s = read_file(signed_path_), u = read_file(unsigned_path_);
  ASSERT_EQ(s.size(), u.size() + kSignatureTrailerBytes);
  EXPECT_TRUE(std::equal(u.begin(), u.end(), s.begin()));
}

// Every byte of the file is covered: flip one in the preamble, the header, padding, a blob, and
// each part of the trailer.
TEST_F(SigningTest, AnyChangedByteFails) {
  const std::vector<uint8_t> good = read_file(signed_path_);
  ASSERT_TRUE(open_trusting(good, key_).ok());
  const Preamble p = decode_preamble(good.data());
  auto f = ModelFile::open(signed_path_);
  ASSERT_TRUE(f.ok());
  const BlobRef& first_blob = (*f)->header().tensors.front().blobs.front();
  const uint64_t trailer = good.size() - kSignatureTrailerBytes;
  const struct {
    const char* what;
    uint64_t offset;
  } cases[] = {
      {"header byte", kPreambleBytes + p.header_bytes / 2},
      {"padding after the header", kPreambleBytes + p.header_bytes + 1},
      {"first blob byte", first_blob.offset},
      {"last blob byte", trailer - 1},
      {"trailer magic", trailer},
      {"trailer algorithm", trailer + 8},
      {"trailer size field", trailer + 12},
      {"trailer public key", trailer + 20},
      {"signature", trailer + 50},
      {"trailer reserved bytes", trailer + 120},
  };
  for (const auto& c : cases) {
    std::vector<uint8_t> bad = good;
    bad[static_cast<size_t>(c.offset)] ^= 0x01;
    EXPECT_FALSE(open_trusting(bad, key_).ok()) << c.what << " at " << c.offset;
  }
}

// An attacker who edits the header recomputes its XXH3 (and would recompute blob XXH3s too): the
// header then verifies, the signature does not.
TEST_F(SigningTest, HeaderEditWithRecomputedChecksumFails) {
  std::vector<uint8_t> bad = read_file(signed_path_);
  const Preamble p = decode_preamble(bad.data());
  bool edited = false;
  // Find a byte of a tensor name (printable) in the header and change it to another letter, so
  // the header stays valid FlatBuffers.
  auto f = ModelFile::open(signed_path_);
  ASSERT_TRUE(f.ok());
  const std::string name = (*f)->header().tensors.front().name;
  auto it = std::search(bad.begin() + kPreambleBytes, bad.begin() + static_cast<long>(kPreambleBytes + p.header_bytes),
                        name.begin(), name.end());
  ASSERT_NE(it, bad.begin() + static_cast<long>(kPreambleBytes + p.header_bytes));
  *it = static_cast<uint8_t>(*it == 'x' ? 'y' : 'x');
  edited = true;
  const uint64_t sum = internal::xxh3_of(ByteSpan(bad.data() + kPreambleBytes, static_cast<size_t>(p.header_bytes)));
  std::memcpy(bad.data() + kPreambleHeaderXxh3Offset, &sum, sizeof(sum));
  ASSERT_TRUE(edited);
  ASSERT_TRUE(ModelFile::open_memory("mem.qmodel", ByteSpan(bad)).ok()) << "the edited header must still be valid";
  const Status st = open_trusting(bad, key_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("does not match the file's bytes"), std::string::npos) << st.message();
}

// The trailer of one signed file appended to another file of the same key does not verify.
TEST_F(SigningTest, SignatureOfAnotherFileFails) {
  const std::vector<uint8_t> s = read_file(signed_path_);
  TestModel m = make_test_model();
  m.blob_data[0][0][0] ^= 0x40;  // another model, same layout
  const std::string other_path = temp_path("other");
  ASSERT_TRUE(write_test_model(other_path, WriterOptions{}, m).ok());
  std::vector<uint8_t> forged = read_file(other_path);
  std::remove(other_path.c_str());
  forged.insert(forged.end(), s.end() - static_cast<long>(kSignatureTrailerBytes), s.end());
  const Status st = open_trusting(forged, key_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("does not match"), std::string::npos) << st.message();
}

// Without a trusted key, --verify still checks that a trailer is a valid signature under the key
// it names (so the trailer cannot carry a hidden payload either).
TEST_F(SigningTest, VerifyChecksSignatureUnderItsOwnKey) {
  std::vector<uint8_t> bad = read_file(signed_path_);
  bad[bad.size() - kSignatureTrailerBytes + 60] ^= 0x01;  // inside the signature
  auto f = ModelFile::open_memory("mem.qmodel", ByteSpan(bad));
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE((*f)->verify_checksums().ok());
}

// Bytes beyond one 64 MiB hash chunk: signed through the read-back path, verified through the
// mapping path, and a byte changed in the third chunk is caught.
TEST(Signatures, MultiChunkFilesSignAndVerify) {
  auto key = generate_secret_key();
  ASSERT_TRUE(key.ok());
  std::vector<uint8_t> file((size_t{150} << 20) + 7);
  for (size_t i = 0; i < file.size(); ++i) file[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  auto read = [&](uint64_t offset, uint8_t* buffer, size_t n) {
    std::memcpy(buffer, file.data() + offset, n);
    return Status();
  };
  auto trailer = make_signature_trailer(file.size(), read, *key);
  ASSERT_TRUE(trailer.ok()) << trailer.status().to_string();
  const size_t covered = file.size();
  file.insert(file.end(), trailer->begin(), trailer->end());
  EXPECT_TRUE(verify_signature("big", ByteSpan(file), covered, key->public_key()).ok());
  file[(size_t{130} << 20) + 3] ^= 0x10;
  EXPECT_FALSE(verify_signature("big", ByteSpan(file), covered, key->public_key()).ok());
}

TEST(KeyFiles, RoundTripAndModes) {
  auto key = generate_secret_key();
  ASSERT_TRUE(key.ok());
  const std::string prefix = temp_path("key");
  ASSERT_TRUE(write_key_files(*key, prefix, false).ok());
  struct stat st {};
  ASSERT_EQ(::stat((prefix + ".key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto secret = load_secret_key(prefix + ".key");
  auto pub = load_public_key(prefix + ".pub");
  ASSERT_TRUE(secret.ok() && pub.ok());
  EXPECT_EQ(secret->bytes, key->bytes);
  EXPECT_EQ(*pub, key->public_key());
  const Status again = write_key_files(*key, prefix, false);
  EXPECT_FALSE(again.ok());
  EXPECT_NE(again.message().find("already exists"), std::string::npos);
  std::remove((prefix + ".key").c_str());
  std::remove((prefix + ".pub").c_str());
}

TEST(KeyFiles, CorruptKeyFilesNameFileAndOffset) {
  auto key = generate_secret_key();
  ASSERT_TRUE(key.ok());
  const std::string prefix = temp_path("corrupt");
  ASSERT_TRUE(write_key_files(*key, prefix, false).ok());
  const std::vector<uint8_t> good_secret = read_file(prefix + ".key");
  const std::vector<uint8_t> good_public = read_file(prefix + ".pub");
  const std::string header_end = "qmodel-ed25519-secret-key\n";
  const struct {
    const char* what;
    bool is_public;
    std::function<void(std::vector<uint8_t>&)> edit;
    const char* message;
  } cases[] = {
      {"empty", false, [](std::vector<uint8_t>& b) { b.clear(); }, "first line"},
      {"public key given as secret", false, [&](std::vector<uint8_t>& b) { b = good_public; }, "first line"},
      {"secret key given as public", true, [&](std::vector<uint8_t>& b) { b = good_secret; }, "first line"},
      {"short", false, [](std::vector<uint8_t>& b) { b.resize(60); }, "file ends"},
      {"non-hex digit", false, [&](std::vector<uint8_t>& b) { b[header_end.size() + 3] = 'g'; }, "another character"},
      {"trailing bytes", false, [](std::vector<uint8_t>& b) { b.push_back('0'); }, "after the key"},
      {"huge", true, [](std::vector<uint8_t>& b) { b.resize(10000, 'a'); }, "larger than 4 KiB"},
      {"public half does not match the seed", false,
       [&](std::vector<uint8_t>& b) { b[header_end.size() + 100] = b[header_end.size() + 100] == '0' ? '1' : '0'; },
       "inconsistent"},
  };
  for (const auto& c : cases) {
    const std::string path = prefix + (c.is_public ? ".bad.pub" : ".bad.key");
    std::vector<uint8_t> bytes = c.is_public ? good_public : good_secret;
    c.edit(bytes);
    write_file(path, bytes);
    const Status st = c.is_public ? load_public_key(path).status() : load_secret_key(path).status();
    ASSERT_FALSE(st.ok()) << c.what;
    EXPECT_NE(st.message().find(path), std::string::npos) << c.what << ": " << st.message();
    EXPECT_NE(st.message().find(c.message), std::string::npos) << c.what << ": " << st.message();
    std::remove(path.c_str());
  }
  EXPECT_EQ(load_public_key(prefix + ".missing").status().code(), StatusCode::kIoError);
  std::remove((prefix + ".key").c_str());
  std::remove((prefix + ".pub").c_str());
}

}  // namespace
}  // namespace qmodel::format::test
