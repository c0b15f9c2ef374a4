// Writes a float32 matrix as a NumPy .npy file (format version 1.0), e.g. qrun --dump-logits.
#pragma once

#include <cstddef>
#include <string>

#include "qmodel/format/status.h"

namespace qmodel::runtime {

// Row-major [rows, cols] little-endian float32. kIoError naming the path when writing fails.
Status write_npy_f32(const std::string& path, const float* data, size_t rows, size_t cols);

}  // namespace qmodel::runtime
