// Test helpers: seeded normal data, and a weight quantized with the reference kernels into owned
// blobs plus the WeightView onto them (every storage type, double quantization optional).
#pragma once

#include <cstring>
#include <random>
#include <vector>

#include "qmodel/format/half.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels::testing {

// n values from N(0, stddev^2), deterministic for a seed.
inline std::vector<float> normal_values(size_t n, unsigned seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A weight quantized into owned blobs, with a view onto them.
struct Stored {
  std::vector<uint8_t> data;
  std::vector<float> absmax, nested_absmax, scb;
  std::vector<uint8_t> absmax_codes;
  std::vector<float> dyn;  // a vector: the view keeps pointing at it after a move
  WeightView view;
};

inline Stored store(StorageType s, const std::vector<float>& w, size_t rows, size_t cols, size_t bs,
             bool double_quant) {
  Stored st;
  WeightView& v = st.view;
  v.storage = s;
  v.rows = rows;
  v.cols = cols;
  const size_t n = rows * cols;
  if (is_4bit(s)) {
    st.data.resize(packed_4bit_bytes(n));
    st.absmax.resize(ceil_div(n, bs));
    quantize_4bit_ref(s, w.data(), n, bs, st.data.data(), st.absmax.data());
    v.block_size = bs;
    v.code_table = s == StorageType::kNF4 ? kNf4CodeTable : kFp4CodeTable;
    v.absmax = st.absmax.data();
    if (double_quant) {
      const auto map = dynamic_map_signed();
      st.dyn.assign(map.begin(), map.end());
      st.absmax_codes.resize(st.absmax.size());
      st.nested_absmax.resize(ceil_div(st.absmax.size(), kNestedBlockSize));
      double_quantize_absmax_ref(st.absmax.data(), st.absmax.size(), st.dyn.data(),
                                 st.absmax_codes.data(), st.nested_absmax.data(), &v.nested_offset);
      v.absmax = nullptr;
      v.absmax_codes = st.absmax_codes.data();
      v.nested_absmax = st.nested_absmax.data();
      v.nested_code_table = st.dyn.data();
      v.nested_block_size = kNestedBlockSize;
    }
  } else if (s == StorageType::kINT8) {
    st.data.resize(n);
    st.scb.resize(rows);
    quantize_int8_rows_ref(w.data(), rows, cols, reinterpret_cast<int8_t*>(st.data.data()), st.scb.data());
    v.row_scale = st.scb.data();
  } else {
    st.data.resize(n * float_storage_bytes(s));
    for (size_t i = 0; i < n; ++i) {
      if (s == StorageType::kF32) {
        std::memcpy(st.data.data() + 4 * i, &w[i], 4);
      } else {
        const uint16_t h = s == StorageType::kF16 ? float_to_f16(w[i]) : float_to_bf16(w[i]);
        std::memcpy(st.data.data() + 2 * i, &h, 2);
      }
    }
  }
  v.data = st.data.data();
  return st;
}

}  // namespace qmodel::kernels::testing
