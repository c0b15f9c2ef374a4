#include "symbolize.h"

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace cuda_emu::detail {
namespace {

// Load address of the main executable (0 unless it is position independent).
uintptr_t executable_base() {
  uintptr_t base = 0;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        *static_cast<uintptr_t*>(data) = info->dlpi_addr;
        return 1;  // the first object is the executable
      },
      &base);
  return base;
}

std::string lookup(uintptr_t offset) {
  const int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat st;
  std::string found;
  if (fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) > sizeof(Elf64_Ehdr)) {
    const size_t size = static_cast<size_t>(st.st_size);
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      const auto* bytes = static_cast<const unsigned char*>(map);
      const auto* eh = static_cast<const Elf64_Ehdr*>(map);
      const bool elf64 = std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64;
      if (elf64 && eh->e_shoff + static_cast<size_t>(eh->e_shnum) * sizeof(Elf64_Shdr) <= size) {
        const auto* sh = reinterpret_cast<const Elf64_Shdr*>(bytes + eh->e_shoff);
        for (int want : {SHT_SYMTAB, SHT_DYNSYM}) {
          for (unsigned i = 0; i < eh->e_shnum && found.empty(); ++i) {
            if (sh[i].sh_type != static_cast<Elf64_Word>(want) || sh[i].sh_link >= eh->e_shnum) continue;
            const Elf64_Shdr& strtab = sh[sh[i].sh_link];
            if (sh[i].sh_offset + sh[i].sh_size > size || strtab.sh_offset + strtab.sh_size > size) continue;
            const auto* syms = reinterpret_cast<const Elf64_Sym*>(bytes + sh[i].sh_offset);
            const size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
            for (size_t k = 0; k < n; ++k) {
              const Elf64_Sym& s = syms[k];
              if (ELF64_ST_TYPE(s.st_info) != STT_FUNC || s.st_name >= strtab.sh_size) continue;
              if (offset >= s.st_value && (offset < s.st_value + s.st_size || offset == s.st_value)) {
                found = reinterpret_cast<const char*>(bytes + strtab.sh_offset + s.st_name);
                break;
              }
            }
          }
          if (!found.empty()) break;
        }
      }
      munmap(map, size);
    }
  }
  close(fd);
  if (found.empty()) return "";
  int status = 0;
  char* demangled = abi::__cxa_demangle(found.c_str(), nullptr, nullptr, &status);
  if (status == 0 && demangled != nullptr) found = demangled;
  std::free(demangled);
  return found;
}

}  // namespace

std::string symbol_name(const void* address) {
  static std::mutex mu;
  static std::map<const void*, std::string>* cache = new std::map<const void*, std::string>;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(address);
  if (it != cache->end()) return it->second;
  std::string name = lookup(reinterpret_cast<uintptr_t>(address) - executable_base());
  if (name.empty()) {
    char buf[48];
    std::snprintf(buf, sizeof(buf), "kernel at %p", address);
    name = buf;
  }
  (*cache)[address] = name;
  return name;
}

}  // namespace cuda_emu::detail
