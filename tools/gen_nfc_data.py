#!/usr/bin/env python3
"""Regenerates runtime/src/tokenizer/nfc_data.cpp (the NFC tables of the tokenizer) from Python's
unicodedata. Run with the Python whose Unicode version the file names (3.11: Unicode 14.0.0):
    python3 tools/gen_nfc_data.py > runtime/src/tokenizer/nfc_data.cpp
Hangul syllables are algorithmic in nfc.cpp and left out here."""
import sys
import unicodedata as ud

HANGUL = range(0xAC00, 0xD7A4)


def rows(items, per_line):
    out = []
    for i in range(0, len(items), per_line):
        out.append("    " + " ".join(items[i:i + per_line]))
    return "\n".join(out)


def main():
    ccc, decomp, comp = [], [], []
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        if ud.combining(c):
            ccc.append(f"{{0x{cp:X},{ud.combining(c)}}},")
        if cp in HANGUL:
            continue
        d = ud.decomposition(c)
        if not d or d.startswith("<"):
            continue
        parts = [int(p, 16) for p in d.split()]
        first, second = parts[0], parts[1] if len(parts) > 1 else 0
        decomp.append(f"{{0x{cp:X},0x{first:X},0x{second:X}}},")
        # A pair composes to c when c survives NFC: drops composition exclusions and singletons.
        if second and ud.normalize("NFC", c) == c:
            comp.append((first, second, cp))
    comp.sort()
    comp_rows = [f"{{0x{a:X},0x{b:X},0x{c:X}}}," for a, b, c in comp]
    print(f"""// Unicode {ud.unidata_version} canonical data for NFC (nfc.cpp): generated from Python's unicodedata with
//   ccc = combining(c) != 0; decomposition(c) without a <tag>; a pair composes to c when NFC(c) == c
//   (this leaves out composition exclusions and singletons). Hangul syllables are algorithmic.
// Data only: do not edit by hand; regenerate with tools/gen_nfc_data.py.
#include "tokenizer/nfc_data.h"

namespace qmodel::runtime::tok {{

const CccEntry kNfcCcc[] = {{
{rows(ccc, 8)}
}};
const size_t kNfcCccCount = sizeof(kNfcCcc) / sizeof(kNfcCcc[0]);

const DecompEntry kNfcDecomp[] = {{
{rows(decomp, 5)}
}};
const size_t kNfcDecompCount = sizeof(kNfcDecomp) / sizeof(kNfcDecomp[0]);

const CompEntry kNfcComp[] = {{
{rows(comp_rows, 5)}
}};
const size_t kNfcCompCount = sizeof(kNfcComp) / sizeof(kNfcComp[0]);

}}  // namespace qmodel::runtime::tok""")


if __name__ == "__main__":
    main()
