// NFC = canonical decomposition, canonical reordering of combining marks, canonical composition
// (UAX #15). Hangul syllables are decomposed and composed arithmetically.
#include "tokenizer/nfc.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tokenizer/nfc_data.h"
#include "tokenizer/utf8.h"

namespace qmodel::runtime::tok {
namespace {

constexpr uint32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
constexpr uint32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr uint32_t kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;
constexpr unsigned char kFirstNonTrivialLead = 0xCC;  // UTF-8 lead bytes of U+0300 and above

uint8_t ccc_of(uint32_t cp) {
  const CccEntry* end = kNfcCcc + kNfcCccCount;
  const CccEntry* it = std::lower_bound(kNfcCcc, end, cp, [](const CccEntry& e, uint32_t v) { return e.cp < v; });
  return it != end && it->cp == cp ? it->ccc : 0;
}

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp >= kHangulS && cp < kHangulS + kHangulSCount) {
    const uint32_t s = cp - kHangulS;
    out.push_back(kHangulL + s / kHangulNCount);
    out.push_back(kHangulV + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount != 0) out.push_back(kHangulT + s % kHangulTCount);
    return;
  }
  const DecompEntry* end = kNfcDecomp + kNfcDecompCount;
  const DecompEntry* it = std::lower_bound(kNfcDecomp, end, cp, [](const DecompEntry& e, uint32_t v) { return e.cp < v; });
  if (it == end || it->cp != cp) {
    out.push_back(cp);
    return;
  }
  decompose(it->first, out);  // depth is bounded by the data (at most 4 levels)
  if (it->second != 0) decompose(it->second, out);
}

// The primary composite of (a, b), or 0.
uint32_t compose(uint32_t a, uint32_t b) {
  if (a >= kHangulL && a < kHangulL + kHangulLCount && b >= kHangulV && b < kHangulV + kHangulVCount) {
    return kHangulS + ((a - kHangulL) * kHangulVCount + (b - kHangulV)) * kHangulTCount;
  }
  if (a >= kHangulS && a < kHangulS + kHangulSCount && (a - kHangulS) % kHangulTCount == 0 && b > kHangulT &&
      b < kHangulT + kHangulTCount) {
    return a + (b - kHangulT);
  }
  const CompEntry* end = kNfcComp + kNfcCompCount;
  const CompEntry* it = std::lower_bound(kNfcComp, end, std::make_pair(a, b), [](const CompEntry& e, std::pair<uint32_t, uint32_t> v) {
    return e.first != v.first ? e.first < v.first : e.second < v.second;
  });
  return it != end && it->first == a && it->second == b ? it->composite : 0;
}

}  // namespace

std::string nfc(const std::string& text) {
  if (std::none_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= kFirstNonTrivialLead; })) {
    return text;
  }
  std::vector<uint32_t> cps;
  cps.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    decompose(utf8_decode(text, i, &n), cps);
    i += n;
  }
  std::vector<uint8_t> ccc(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) ccc[i] = ccc_of(cps[i]);
  // Canonical ordering: stable insertion sort inside each run of non-starters.
  for (size_t i = 1; i < cps.size(); ++i) {
    for (size_t j = i; j > 0 && ccc[j] != 0 && ccc[j - 1] > ccc[j]; --j) {
      std::swap(cps[j], cps[j - 1]);
      std::swap(ccc[j], ccc[j - 1]);
    }
  }
  // Canonical composition: a mark joins the last starter unless blocked by a mark of equal or higher class.
  std::vector<uint32_t> out;
  std::vector<uint8_t> out_ccc;
  size_t starter = SIZE_MAX;
  for (size_t i = 0; i < cps.size(); ++i) {
    const uint32_t cp = cps[i];
    const uint8_t c = ccc[i];
    if (starter != SIZE_MAX) {
      const uint8_t last_ccc = out.size() - 1 == starter ? 0 : out_ccc.back();
      const bool blocked = out.size() - 1 != starter && (last_ccc == 0 || last_ccc >= c);
      if (!blocked) {
        const uint32_t composite = compose(out[starter], cp);
        if (composite != 0) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (c == 0) starter = out.size();
    out.push_back(cp);
    out_ccc.push_back(c);
  }
  std::string result;
  result.reserve(text.size());
  for (uint32_t cp : out) append_utf8(result, cp);
  return result;
}

}  // namespace qmodel::runtime::tok
