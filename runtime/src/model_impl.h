// Model internals shared by model.cpp and session.cpp.
#pragma once

#include <memory>

#include "qmodel/format/reader.h"
#include "qmodel/runtime/model.h"
#include "qmodel/runtime/tokenizer.h"
#include "cuda_backend.h"
#include "weights.h"

namespace qmodel::runtime {

struct Model::Impl {
  std::unique_ptr<format::ModelFile> file;  // the verified mapping every WeightView points into
  ModelWeights weights;
  std::unique_ptr<Tokenizer> tokenizer;     // null when the file embeds none
  std::unique_ptr<DeviceModel> device;      // Device::kCuda: the weights in device memory
  ModelOptions options;
  double load_seconds = 0;
};

}  // namespace qmodel::runtime
