// Ed25519 signatures for .qmodel files (libsodium), so a file shipped to machines the publisher does
// not control proves who wrote it (docs/FORMAT.md §5).
//
// A signed file ends with a 128-byte trailer after its last blob:
//   magic[8] "QMSIG01\n" | u32 algorithm (1) | u32 trailer_bytes (128) | public_key[32] |
//   signature[64] | zero[16]
// The signature is Ed25519 over a BLAKE2b-512 digest of every byte before the trailer (preamble,
// header with every blob's XXH3, blobs, padding; hashed in 64 MiB chunks on all cores) and the
// trailer's first 48 bytes (so the key id cannot be swapped); docs/FORMAT.md §8 gives the exact
// message. Changing any byte of the file breaks it.
//
// Key files are text: a line "qmodel-ed25519-secret-key" (or "-public-key") and a line of hex
// (64 secret-key bytes: libsodium's seed || public key; or 32 public-key bytes).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "qmodel/format/span.h"
#include "qmodel/format/status.h"

namespace qmodel::format {

inline constexpr uint64_t kSignatureTrailerBytes = 128;
inline constexpr uint32_t kSignatureAlgorithmEd25519Blake2b = 1;

struct PublicKey {
  std::array<uint8_t, 32> bytes{};
  // First 8 bytes in hex: how qinspect and error messages name a key.
  std::string fingerprint() const;
  bool operator==(const PublicKey& o) const { return bytes == o.bytes; }
};

struct SecretKey {
  std::array<uint8_t, 64> bytes{};  // libsodium layout: 32-byte seed || 32-byte public key
  PublicKey public_key() const;
};

// A fresh key pair from the system's random source.
Result<SecretKey> generate_secret_key();
// Writes `<prefix>.key` (mode 0600) and `<prefix>.pub`; refuses existing files unless overwrite.
Status write_key_files(const SecretKey& key, const std::string& prefix, bool overwrite);
// Reads key files written by write_key_files(); errors name the file and the offset.
Result<SecretKey> load_secret_key(const std::string& path);
Result<PublicKey> load_public_key(const std::string& path);
// The same from text already read (`name` is used in messages; fuzzing).
Result<SecretKey> parse_secret_key(const std::string& name, const std::string& text);
Result<PublicKey> parse_public_key(const std::string& name, const std::string& text);

// The trailer of a signed file, as found at its end (not yet checked against any key).
struct SignatureInfo {
  uint64_t trailer_offset = 0;  // = bytes covered by the signature
  PublicKey signer;
};

// The trailer of `file` when its last 128 bytes are one (magic, algorithm and size all right) and
// start at or after `data_end` (the end of the header and of every blob); nullopt otherwise.
std::optional<SignatureInfo> find_signature(ByteSpan file, uint64_t data_end);

// Checks that `file` is signed by `trusted`: kChecksumMismatch names what is wrong (no signature,
// another signer, a signature that does not match the bytes). `name` is used in messages.
Status verify_signature(const std::string& name, ByteSpan file, uint64_t data_end, const PublicKey& trusted);

// Builds the 128-byte trailer for a file whose first `covered_bytes` bytes are produced, in order,
// by `read(offset, buffer, n)` (the writer reads its temporary file back).
using ReadAt = std::function<Status(uint64_t offset, uint8_t* buffer, size_t n)>;
Result<std::array<uint8_t, kSignatureTrailerBytes>> make_signature_trailer(uint64_t covered_bytes, const ReadAt& read,
                                                                           const SecretKey& key);

}  // namespace qmodel::format
