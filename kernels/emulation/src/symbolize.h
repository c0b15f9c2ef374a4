// Best-effort names of kernels for messages: the demangled symbol containing a function address,
// read from the executable's ELF symbol table (so it works for static, non-exported functions).
#pragma once

#include <string>

namespace cuda_emu::detail {

// "qmodel::kernels::detail::gemv_aligned_kernel<...>(...)", or "kernel at 0x..." when unknown.
std::string symbol_name(const void* address);

}  // namespace cuda_emu::detail
