// Sorted Unicode tables for NFC (defined in nfc_data.cpp): canonical combining classes, canonical
// decompositions (second == 0 for singletons) and primary-composite pairs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qmodel::runtime::tok {

struct CccEntry { uint32_t cp; uint8_t ccc; };
struct DecompEntry { uint32_t cp, first, second; };
struct CompEntry { uint32_t first, second, composite; };

extern const CccEntry kNfcCcc[];
extern const size_t kNfcCccCount;
extern const DecompEntry kNfcDecomp[];   // sorted by cp
extern const size_t kNfcDecompCount;
extern const CompEntry kNfcComp[];       // sorted by (first, second)
extern const size_t kNfcCompCount;

}  // namespace qmodel::runtime::tok
