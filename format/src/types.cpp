// Lookup helpers declared on the plain header structs in types.h.
#include "qmodel/format/types.h"

namespace qmodel::format {

uint64_t TensorInfo::n_elems() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;  // verified by the reader not to overflow
  return n;
}

const BlobRef* TensorInfo::find_blob(BlobRole blob_role) const {
  for (const BlobRef& b : blobs) {
    if (b.role == blob_role) return &b;
  }
  return nullptr;
}

const TensorInfo* ModelHeader::find_tensor(const std::string& name) const {
  for (const TensorInfo& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const EmbeddedFile* ModelHeader::find_file(const std::string& name) const {
  for (const EmbeddedFile& f : files) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace qmodel::format
