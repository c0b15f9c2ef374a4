// Fuzz target: the Ed25519 key file parsers (format/signing.h) on arbitrary text. A key that
// parses must round-trip: its public half re-parses to the same key.
#include <cstring>
#include <string>
#include <vector>

#include "fuzz/fuzz_seeds.h"
#include "qmodel/format/signing.h"

std::vector<std::string> qmodel_fuzz_seeds() {
  // A fixed key pair (seed 00..1f), so the seeds do not change from run to run.
  return {
      "qmodel-ed25519-secret-key\n"
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
      "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8\n",
      "qmodel-ed25519-public-key\n03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8\n",
      "qmodel-ed25519-public-key\n03A107BFF3CE10BE1D70DD18E74BC09967E4D6309BA50D5F1DDC8664125531B8",
  };
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto secret = qmodel::format::parse_secret_key("fuzz.key", text);
  auto pub = qmodel::format::parse_public_key("fuzz.pub", text);
  if (pub.ok()) {
    static const char kHex[] = "0123456789abcdef";
    std::string again = "qmodel-ed25519-public-key\n";
    for (uint8_t b : pub->bytes) again += {kHex[b >> 4], kHex[b & 15]};
    auto reparsed = qmodel::format::parse_public_key("again.pub", again);
    if (!reparsed.ok() || !(*reparsed == *pub)) __builtin_trap();
  }
  if (secret.ok() && !(secret->public_key().bytes.size() == 32)) __builtin_trap();
  return 0;
}
