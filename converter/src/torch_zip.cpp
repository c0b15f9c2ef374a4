// A small zip central-directory reader for torch checkpoints.
//
// Why not libzip or minizip (both in Debian): they hand out entries through a read/inflate API
// that copies into caller buffers; neither gives a pointer into a caller's mapping for a STORED
// entry. Tensor data must be used zero-copy from the mmap (a 70B checkpoint is 140 GB), so we only
// need the directory: find the end-of-central-directory record (ZIP64 too: torch writes ZIP64 for
// checkpoints over 4 GiB), walk the central directory with overflow-checked arithmetic, verify
// each local header against it, and return byte ranges. Reading the data (and refusing compressed
// or encrypted entries) is up to the caller.
#include <algorithm>
#include <limits>
#include <map>
#include <new>

#include "qmodel/converter/torch_checkpoint.h"

namespace qmodel::converter {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint64_t kEocdBytes = 22;
constexpr uint64_t kZip64LocatorBytes = 20;
constexpr uint64_t kZip64EocdBytes = 56;
constexpr uint64_t kCentralBytes = 46;
constexpr uint64_t kLocalBytes = 30;
constexpr uint16_t kZip64ExtraId = 0x0001;

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t le64(const uint8_t* p) { return static_cast<uint64_t>(le32(p)) | (static_cast<uint64_t>(le32(p + 4)) << 32); }

int64_t off(uint64_t v) {
  return v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? -1 : static_cast<int64_t>(v);
}

// True when [offset, offset + n) lies inside a buffer of `size` bytes.
bool in_bounds(uint64_t offset, uint64_t n, uint64_t size) { return offset <= size && n <= size - offset; }

bool safe_name(const std::string& name) {
  if (name.empty() || name.front() == '/' || name.find('\\') != std::string::npos ||
      name.find('\0') != std::string::npos || name.find(':') != std::string::npos) {
    return false;
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    const std::string part = name.substr(start, end - start);
    if (part == "..") return false;
    start = end + 1;
  }
  return true;
}

struct Eocd {
  uint64_t n_entries = 0;
  uint64_t cd_size = 0;
  uint64_t cd_offset = 0;
  uint64_t cd_end_limit = 0;  // where the central directory must end (start of the EOCD records)
};

Result<Eocd> find_eocd(const std::string& file, ByteSpan bytes) {
  const uint64_t size = bytes.size();
  if (size < kEocdBytes) return corrupt_file(file, "", 0, "too short for a zip file (" + std::to_string(size) + " bytes)");
  // The EOCD record is the last 22 bytes plus a comment of at most 65535 bytes; take the last
  // candidate whose comment length reaches exactly the end of the file.
  const uint64_t lowest = size - kEocdBytes > 0xffff ? size - kEocdBytes - 0xffff : 0;
  uint64_t pos = size - kEocdBytes;
  bool found = false;
  for (;;) {
    const uint8_t* p = bytes.data() + pos;
    if (le32(p) == kEocdSig && pos + kEocdBytes + le16(p + 20) == size) {
      found = true;
      break;
    }
    if (pos == lowest) break;
    --pos;
  }
  if (!found) return corrupt_file(file, "", -1, "no zip end-of-central-directory record");
  const uint8_t* p = bytes.data() + pos;
  Eocd e;
  const uint16_t disk = le16(p + 4), cd_disk = le16(p + 6);
  const uint16_t n_disk = le16(p + 8), n_total = le16(p + 10);
  e.n_entries = n_total;
  e.cd_size = le32(p + 12);
  e.cd_offset = le32(p + 16);
  e.cd_end_limit = pos;
  const bool zip64_marked = n_total == 0xffff || e.cd_size == 0xffffffffu || e.cd_offset == 0xffffffffu;
  if (pos >= kZip64LocatorBytes && le32(bytes.data() + pos - kZip64LocatorBytes) == kZip64LocatorSig) {
    const uint8_t* loc = bytes.data() + pos - kZip64LocatorBytes;
    const uint64_t z_off = le64(loc + 8);
    if (le32(loc + 4) != 0 || le32(loc + 16) > 1) {
      return corrupt_file(file, "", off(pos - kZip64LocatorBytes), "multi-disk zip archives are not supported");
    }
    if (!in_bounds(z_off, kZip64EocdBytes, pos - kZip64LocatorBytes) || le32(bytes.data() + z_off) != kZip64EocdSig) {
      return corrupt_file(file, "", off(pos - kZip64LocatorBytes),
                          "ZIP64 locator points to " + std::to_string(z_off) + ", which holds no ZIP64 end record");
    }
    const uint8_t* z = bytes.data() + z_off;
    if (le32(z + 16) != 0 || le32(z + 20) != 0 || le64(z + 24) != le64(z + 32)) {
      return corrupt_file(file, "", off(z_off), "multi-disk zip archives are not supported");
    }
    e.n_entries = le64(z + 32);
    e.cd_size = le64(z + 40);
    e.cd_offset = le64(z + 48);
    e.cd_end_limit = z_off;
  } else if (zip64_marked) {
    return corrupt_file(file, "", off(pos), "zip end record needs ZIP64 values but there is no ZIP64 locator");
  } else if (disk != 0 || cd_disk != 0 || n_disk != n_total) {
    return corrupt_file(file, "", off(pos), "multi-disk zip archives are not supported");
  }
  if (e.n_entries > kMaxZipEntries) {
    return corrupt_file(file, "", off(pos), std::to_string(e.n_entries) + " zip entries (limit " +
                                                std::to_string(kMaxZipEntries) + ")");
  }
  if (!in_bounds(e.cd_offset, e.cd_size, e.cd_end_limit) || e.cd_offset + e.cd_size != e.cd_end_limit) {
    return corrupt_file(file, "", off(e.cd_offset),
                        "central directory [" + std::to_string(e.cd_offset) + ", +" + std::to_string(e.cd_size) +
                            ") does not end where the end records start (" + std::to_string(e.cd_end_limit) + ")");
  }
  return e;
}

// Applies a ZIP64 extended-information extra field to the 0xffffffff placeholders.
Status apply_zip64_extra(const std::string& file, const std::string& name, int64_t at, const uint8_t* extra,
                         uint64_t extra_len, bool need_size, bool need_csize, bool need_offset, uint64_t* size,
                         uint64_t* csize, uint64_t* offset) {
  uint64_t pos = 0;
  bool seen = false;
  while (extra_len - pos >= 4) {
    const uint16_t id = le16(extra + pos), len = le16(extra + pos + 2);
    if (len > extra_len - pos - 4) return corrupt_file(file, name, at, "zip extra field runs past its record");
    if (id == kZip64ExtraId) {
      if (seen) return corrupt_file(file, name, at, "two ZIP64 extra fields");
      seen = true;
      const uint8_t* f = extra + pos + 4;
      uint64_t used = 0;
      auto take = [&](uint64_t* v) {
        if (len - used < 8) return false;
        *v = le64(f + used);
        used += 8;
        return true;
      };
      if ((need_size && !take(size)) || (need_csize && !take(csize)) || (need_offset && !take(offset))) {
        return corrupt_file(file, name, at, "ZIP64 extra field too short for the values it must hold");
      }
    }
    pos += 4u + len;
  }
  if (pos != extra_len) return corrupt_file(file, name, at, "zip extra fields do not fill their record");
  if ((need_size || need_csize || need_offset) && !seen) {
    return corrupt_file(file, name, at, "a size or offset is 0xffffffff but there is no ZIP64 extra field");
  }
  return Status::ok_status();
}

}  // namespace

Result<std::vector<ZipEntry>> read_zip_directory(const std::string& file, ByteSpan bytes) {
  try {
    QMODEL_ASSIGN_OR_RETURN(Eocd eocd, find_eocd(file, bytes));
    std::vector<ZipEntry> entries;
    entries.reserve(static_cast<size_t>(std::min<uint64_t>(eocd.n_entries, 4096)));
    std::map<std::string, size_t> names;
    uint64_t pos = eocd.cd_offset;
    const uint64_t cd_end = eocd.cd_offset + eocd.cd_size;
    for (uint64_t i = 0; i < eocd.n_entries; ++i) {
      if (!in_bounds(pos, kCentralBytes, cd_end) || le32(bytes.data() + pos) != kCentralSig) {
        return corrupt_file(file, "", off(pos), "zip central directory record " + std::to_string(i) + " is missing or truncated");
      }
      const uint8_t* c = bytes.data() + pos;
      const uint64_t name_len = le16(c + 28), extra_len = le16(c + 30), comment_len = le16(c + 32);
      if (!in_bounds(pos + kCentralBytes, name_len + extra_len + comment_len, cd_end)) {
        return corrupt_file(file, "", off(pos), "zip central directory record runs past the directory");
      }
      ZipEntry e;
      e.name.assign(reinterpret_cast<const char*>(c + kCentralBytes), static_cast<size_t>(name_len));
      e.flags = le16(c + 8);
      e.method = le16(c + 10);
      e.crc32 = le32(c + 16);
      e.compressed_size = le32(c + 20);
      e.size = le32(c + 24);
      e.header_offset = le32(c + 42);
      const int64_t at = off(pos);
      if (!safe_name(e.name)) {
        return corrupt_file(file, "", at, "zip entry '" + e.name + "': name is absolute or contains '..', '\\', ':' or NUL; refused");
      }
      if (le16(c + 34) != 0 && le16(c + 34) != 0xffff) {
        return corrupt_file(file, e.name, at, "multi-disk zip archives are not supported");
      }
      QMODEL_RETURN_IF_ERROR(apply_zip64_extra(file, e.name, at, c + kCentralBytes + name_len, extra_len,
                                               e.size == 0xffffffffu, e.compressed_size == 0xffffffffu,
                                               e.header_offset == 0xffffffffu, &e.size, &e.compressed_size,
                                               &e.header_offset));
      if (e.method == 0 && e.compressed_size != e.size) {
        return corrupt_file(file, e.name, at, "stored zip entry has compressed size " + std::to_string(e.compressed_size) +
                                                  " != size " + std::to_string(e.size));
      }
      // The local header must agree with the central record.
      const uint64_t h = e.header_offset;
      if (!in_bounds(h, kLocalBytes, eocd.cd_offset) || le32(bytes.data() + h) != kLocalSig) {
        return corrupt_file(file, e.name, off(h), "zip local header missing (entry must lie before the central directory)");
      }
      const uint8_t* l = bytes.data() + h;
      const uint64_t l_name_len = le16(l + 26), l_extra_len = le16(l + 28);
      if (!in_bounds(h + kLocalBytes, l_name_len + l_extra_len, eocd.cd_offset)) {
        return corrupt_file(file, e.name, off(h), "zip local header runs into the central directory");
      }
      if (l_name_len != name_len || std::string(reinterpret_cast<const char*>(l + kLocalBytes), l_name_len) != e.name) {
        return corrupt_file(file, e.name, off(h), "zip local header names a different file than the central directory");
      }
      if (le16(l + 8) != e.method || (le16(l + 6) & 1) != (e.flags & 1)) {
        return corrupt_file(file, e.name, off(h), "zip local header and central directory disagree on method or encryption");
      }
      if ((le16(l + 6) & 8) == 0) {  // no data descriptor: the local sizes must be the real ones
        uint64_t l_csize = le32(l + 18), l_size = le32(l + 22), unused = 0;
        QMODEL_RETURN_IF_ERROR(apply_zip64_extra(file, e.name, off(h), l + kLocalBytes + l_name_len, l_extra_len,
                                                 l_size == 0xffffffffu, l_csize == 0xffffffffu, false, &l_size,
                                                 &l_csize, &unused));
        if (l_csize != e.compressed_size || l_size != e.size || le32(l + 14) != e.crc32) {
          return corrupt_file(file, e.name, off(h), "zip local header and central directory disagree on size or CRC");
        }
      }
      e.data_offset = h + kLocalBytes + l_name_len + l_extra_len;
      if (!in_bounds(e.data_offset, e.compressed_size, eocd.cd_offset)) {
        return corrupt_file(file, e.name, off(e.data_offset),
                            "zip entry data (" + std::to_string(e.compressed_size) + " bytes) runs past the entries' area");
      }
      if (!names.emplace(e.name, entries.size()).second) return corrupt_file(file, e.name, at, "duplicate zip entry name");
      entries.push_back(std::move(e));
      pos += kCentralBytes + name_len + extra_len + comment_len;
    }
    if (pos != cd_end) return corrupt_file(file, "", off(pos), "trailing bytes in the zip central directory");
    // No two entries (local header through data) may overlap.
    std::vector<const ZipEntry*> sorted;
    sorted.reserve(entries.size());
    for (const ZipEntry& e : entries) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(),
              [](const ZipEntry* a, const ZipEntry* b) { return a->header_offset < b->header_offset; });
    for (size_t i = 1; i < sorted.size(); ++i) {
      if (sorted[i]->header_offset < sorted[i - 1]->data_offset + sorted[i - 1]->compressed_size) {
        return corrupt_file(file, sorted[i]->name, off(sorted[i]->header_offset),
                            "zip entry overlaps entry '" + sorted[i - 1]->name + "'");
      }
    }
    return entries;
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, file + ": out of memory reading the zip directory");
  }
}

}  // namespace qmodel::converter
