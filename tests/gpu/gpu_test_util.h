// Helpers shared by the GPU tests (tests/gpu; each file builds with nvcc for a real GPU and, as
// <name>_emu, against the CPU emulator of CUDA): GPU presence with SKIP_WITHOUT_GPU, ASSERT_OK for
// a Status, an RAII device buffer, and the bf16 / fp16 / fp32 activation encodings with their ulp,
// for comparisons against the CPU backend.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "qmodel/format/half.h"
#include "qmodel/format/status.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::gpu_test {

inline bool has_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define SKIP_WITHOUT_GPU() \
  if (!::qmodel::gpu_test::has_gpu()) GTEST_SKIP() << "no CUDA device"

#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const ::qmodel::Status st_ = (expr);                     \
    ASSERT_TRUE(st_.ok()) << #expr << ": " << st_.message(); \
  } while (0)

// ---- device memory ------------------------------------------------------------------------------
// Copies and fills are checked with EXPECT_EQ (a failure fails the test, the caller goes on).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;  // holds nothing: get() is nullptr
  // n_bytes of device memory (at least one byte is allocated, so even an empty buffer has an
  // address); get() is nullptr when cudaMalloc fails.
  explicit DeviceBuffer(size_t n_bytes) : n_bytes_(n_bytes) {
    if (cudaMalloc(&ptr_, std::max<size_t>(n_bytes, 1)) != cudaSuccess) ptr_ = nullptr;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), n_bytes_(o.n_bytes_) { o.ptr_ = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(n_bytes_, o.n_bytes_);
    return *this;
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }

  // A buffer holding v after `offset` unused leading bytes (a way to get a deliberately
  // misaligned copy).
  template <typename T>
  static DeviceBuffer upload(const std::vector<T>& v, size_t offset = 0) {
    DeviceBuffer b(offset + v.size() * sizeof(T));
    b.write(v.data(), v.size() * sizeof(T), offset);
    return b;
  }
  template <typename T>
  void write(const std::vector<T>& v) {
    write(v.data(), v.size() * sizeof(T));
  }
  void write(const void* src, size_t n_bytes, size_t offset = 0) {
    EXPECT_EQ(cudaMemcpy(static_cast<char*>(ptr_) + offset, src, n_bytes, cudaMemcpyHostToDevice), cudaSuccess);
  }
  void fill(int byte) { fill(byte, 0, n_bytes_); }
  void fill(int byte, size_t offset, size_t n_bytes) {
    EXPECT_EQ(cudaMemset(static_cast<char*>(ptr_) + offset, byte, n_bytes), cudaSuccess);
  }
  void poison() { fill(0xff); }  // 0xff.. is NaN in every float type
  void poison(size_t offset, size_t n_bytes) { fill(0xff, offset, n_bytes); }
  // n values of T starting `offset` bytes in.
  template <typename T>
  std::vector<T> download(size_t n, size_t offset = 0) const {
    std::vector<T> v(n);
    EXPECT_EQ(cudaMemcpy(v.data(), static_cast<const char*>(ptr_) + offset, n * sizeof(T), cudaMemcpyDeviceToHost),
              cudaSuccess);
    return v;
  }
  void* get() const { return ptr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t size() const { return n_bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t n_bytes_ = 0;
};

}  // namespace qmodel::gpu_test

namespace qmodel::runtime {

using gpu_test::DeviceBuffer;
using gpu_test::has_gpu;
using kernels::ActType;

// ---- activations on the host ------------------------------------------------------------------
inline constexpr ActType kActs[] = {ActType::kBF16, ActType::kF16, ActType::kF32};

inline const char* act_name(ActType a) { return a == ActType::kBF16 ? "bf16" : (a == ActType::kF16 ? "fp16" : "fp32"); }
inline size_t act_size(ActType a) { return a == ActType::kF32 ? 4 : 2; }

inline std::vector<uint8_t> encode(ActType act, const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * act_size(act));
  for (size_t i = 0; i < v.size(); ++i) {
    if (act == ActType::kF32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = act == ActType::kBF16 ? float_to_bf16(v[i]) : float_to_f16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

inline std::vector<float> decode(ActType act, const std::vector<uint8_t>& b) {
  std::vector<float> out(b.size() / act_size(act));
  for (size_t i = 0; i < out.size(); ++i) {
    if (act == ActType::kF32) {
      std::memcpy(&out[i], b.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, b.data() + 2 * i, 2);
      out[i] = act == ActType::kBF16 ? bf16_to_float(h) : f16_to_float(h);
    }
  }
  return out;
}

inline std::vector<float> round_to(ActType act, const std::vector<float>& v) { return decode(act, encode(act, v)); }

// One unit in the last place of `act` at magnitude |v| (subnormal steps included).
inline double ulp(ActType act, double v) {
  const int mant = act == ActType::kBF16 ? 7 : (act == ActType::kF16 ? 10 : 23);
  const int min_exp = act == ActType::kF16 ? -14 : -126;
  const int e = v == 0.0 ? min_exp : std::max(std::ilogb(v), min_exp);
  return std::ldexp(1.0, e - mant);
}

inline std::vector<float> normal(size_t n, uint32_t seed, float stddev, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

}  // namespace qmodel::runtime
