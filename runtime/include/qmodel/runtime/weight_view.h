// A stored tensor of a verified .qmodel as a kernels::WeightView: pointers into the mapping (or
// the decompressed copy), no dequantization. Used by the runtime, qinspect --dequantize and tests.
#pragma once

#include "qmodel/format/reader.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::runtime {

// [rows, cols] = [shape[0], product of the other dims], or [1, n] for a vector. Checks every blob
// the storage type needs is there with the size it implies (kCorruptFile naming the tensor).
// `file` must outlive the view.
Result<kernels::WeightView> make_weight_view(const format::ModelFile& file, const format::TensorInfo& tensor);

}  // namespace qmodel::runtime
