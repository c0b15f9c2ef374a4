// The CUDA emulator itself (kernels/emulation): barriers, warp shuffles / votes against the PTX
// lane rules, deadlock and misuse detection, atomics across concurrently running blocks, the
// fp16 / bf16 conversions against qmodel/format/half.h, memory registry and copy checks, stream
// capture and graph replay semantics, cuBLASLt against a naive loop, and launch validation.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_emu/emulator.h"
#include "emu_test_kernels.h"
#include "qmodel/format/half.h"

namespace {

// Device buffer of T, freed at scope end.
template <typename T>
class DevBuf {
 public:
  explicit DevBuf(size_t n) : n_(n) { EXPECT_EQ(cudaMalloc(&p_, n * sizeof(T)), cudaSuccess); }
  ~DevBuf() { (void)cudaFree(p_); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  T* get() const { return static_cast<T*>(p_); }
  std::vector<T> download() const {
    std::vector<T> v(n_);
    EXPECT_EQ(cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }
  void upload(const std::vector<T>& v) {
    ASSERT_EQ(cudaMemcpy(p_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }

 private:
  void* p_ = nullptr;
  size_t n_;
};

// Pinned host buffer of T.
template <typename T>
class PinnedBuf {
 public:
  explicit PinnedBuf(size_t n) { EXPECT_EQ(cudaMallocHost(&p_, n * sizeof(T)), cudaSuccess); }
  ~PinnedBuf() { (void)cudaFreeHost(p_); }
  PinnedBuf(const PinnedBuf&) = delete;
  PinnedBuf& operator=(const PinnedBuf&) = delete;
  T* get() const { return static_cast<T*>(p_); }
  T& operator[](size_t i) { return get()[i]; }

 private:
  void* p_ = nullptr;
};

// ---- execution model ------------------------------------------------------------------------------

TEST(CudaEmuExecution, BlockBarriersAndSharedMemory) {
  for (int threads : {32, 256, 1024}) {
    DevBuf<int> out(8);
    ASSERT_EQ(emu_test::block_sum(out.get(), 8, threads), cudaSuccess);
    const auto got = out.download();
    for (int b = 0; b < 8; ++b) {
      EXPECT_EQ(got[b], b * 1000 * threads + threads * (threads - 1) / 2) << "block " << b << " threads " << threads;
    }
  }
}

TEST(CudaEmuExecution, MultiDimensionalIndices) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  const unsigned per_block = 4 * 3 * 2, n = per_block * 12;
  DevBuf<uint32_t> out(2 * n);
  ASSERT_EQ(emu_test::indices(out.get(), grid, block), cudaSuccess);
  const auto got = out.download();
  for (unsigned bz = 0; bz < 2; ++bz) {
    for (unsigned by = 0; by < 2; ++by) {
      for (unsigned bx = 0; bx < 3; ++bx) {
        for (unsigned tz = 0; tz < 2; ++tz) {
          for (unsigned ty = 0; ty < 3; ++ty) {
            for (unsigned tx = 0; tx < 4; ++tx) {
              const unsigned g = (bx + 3 * (by + 2 * bz)) * per_block + tx + 4 * (ty + 3 * tz);
              EXPECT_EQ(got[2 * g], tx | ty << 10 | tz << 20);
              EXPECT_EQ(got[2 * g + 1], bx | by << 10 | bz << 20);
            }
          }
        }
      }
    }
  }
}

// The PTX shfl.sync lane rules, written independently of the emulator's implementation.
int expected_shuffle(int t, int threads, emu_test::Shuffle kind, int arg, int width) {
  const int lane = t % 32, base = t - lane;
  const int seg = lane / width * width;
  int src = lane;
  switch (kind) {
    case emu_test::Shuffle::kIdx: src = seg + arg % width; break;
    case emu_test::Shuffle::kUp: src = lane % width >= arg ? lane - arg : lane; break;
    case emu_test::Shuffle::kDown: src = lane % width + arg < width ? lane + arg : lane; break;
    case emu_test::Shuffle::kXor: src = (lane ^ arg) < seg + width ? lane ^ arg : lane; break;
  }
  if (base + src >= threads) return -1;  // a lane that does not exist: undefined, all-ones here
  return 1000 + base + src;
}

TEST(CudaEmuExecution, ShufflesFollowThePtxLaneRules) {
  using emu_test::Shuffle;
  for (int threads : {32, 64, 48}) {
    for (Shuffle kind : {Shuffle::kIdx, Shuffle::kUp, Shuffle::kDown, Shuffle::kXor}) {
      for (int width : {32, 16, 8}) {
        for (int arg : {0, 1, 3, 5, 16, 31}) {
          DevBuf<int> out(static_cast<size_t>(threads));
          ASSERT_EQ(emu_test::shuffle(out.get(), threads, kind, arg, width), cudaSuccess);
          const auto got = out.download();
          for (int t = 0; t < threads; ++t) {
            ASSERT_EQ(got[static_cast<size_t>(t)], expected_shuffle(t, threads, kind, arg, width))
                << "threads " << threads << " kind " << static_cast<int>(kind) << " width " << width << " arg "
                << arg << " t " << t;
          }
        }
      }
    }
  }
}

TEST(CudaEmuExecution, VotesReductionsMatchesAndCountingBarriers) {
  for (int threads : {64, 40}) {
    DevBuf<uint32_t> out(4 * static_cast<size_t>(threads)), out2(static_cast<size_t>(threads));
    ASSERT_EQ(emu_test::votes(out.get(), out2.get(), threads), cudaSuccess);
    const auto got = out.download(), got2 = out2.download();
    for (int t = 0; t < threads; ++t) {
      const int base = t - t % 32, lanes = std::min(32, threads - base);
      const uint32_t exists = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
      uint32_t ballot = 0, sum = 0;
      for (int l = 0; l < lanes; ++l) {
        if (l % 3 == 0) ballot |= 1u << l;
        sum += static_cast<uint32_t>(l);
      }
      const auto i = static_cast<size_t>(t);
      EXPECT_EQ(got[4 * i], ballot) << t;
      EXPECT_EQ(got[4 * i + 1], lanes > 5 ? 1u : 0u) << t;
      EXPECT_EQ(got[4 * i + 2], 1u) << t;
      EXPECT_EQ(got[4 * i + 3], sum) << t;
      const uint32_t match = (0xfu << (4 * ((t % 32) / 4))) & exists;
      const auto count = static_cast<uint32_t>((threads + 1) / 2);
      EXPECT_EQ(got2[i], match ^ (count << 8) ^ (0u << 30) ^ (1u << 31)) << t;
    }
  }
}

TEST(CudaEmuExecution, ReturnedThreadsLeaveBarriers) {
  DevBuf<int> out(64);
  ASSERT_EQ(cudaMemset(out.get(), 0, 64 * sizeof(int)), cudaSuccess);
  ASSERT_EQ(emu_test::shuffle_with_exited_lanes(out.get(), 64, 16), cudaSuccess);
  auto got = out.download();
  for (int t = 0; t < 64; ++t) {
    if (t % 32 < 16) EXPECT_EQ(got[static_cast<size_t>(t)], t ^ 1) << t;
  }
  ASSERT_EQ(emu_test::barrier_with_exited_threads(out.get(), 64), cudaSuccess);
  got = out.download();
  for (int t = 0; t < 64; t += 2) EXPECT_EQ(got[static_cast<size_t>(t)], t) << t;
}

TEST(CudaEmuExecution, DeadlockIsALaunchErrorNotAHang) {
  for (int mode : {0, 1}) {
    testing::internal::CaptureStderr();
    EXPECT_EQ(emu_test::deadlock(mode), cudaErrorLaunchFailure);
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("deadlock"), std::string::npos) << err;
    EXPECT_NE(err.find("deadlock_kernel"), std::string::npos) << err;
    EXPECT_NE(err.find("__shfl_xor_sync"), std::string::npos) << err;
    EXPECT_NE(err.find("__syncthreads"), std::string::npos) << err;
    // Reported once more by the next synchronising call, then the device works again.
    EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }
  DevBuf<int> out(1);
  EXPECT_EQ(emu_test::block_sum(out.get(), 1, 32), cudaSuccess);
  EXPECT_EQ(out.download()[0], 32 * 31 / 2);
}

TEST(CudaEmuExecution, MisusedCollectivesAndTrapFailTheLaunch) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(emu_test::mismatched_collectives(), cudaErrorLaunchFailure);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("mismatched warp collectives"), std::string::npos);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
  testing::internal::CaptureStderr();
  EXPECT_EQ(emu_test::trap(), cudaErrorLaunchFailure);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("__trap"), std::string::npos);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
}

TEST(CudaEmuExecution, AtomicsAcrossConcurrentBlocks) {
  DevBuf<unsigned long long> counter(1);
  DevBuf<float> fsum(1);
  DevBuf<int> imax(1), imin(1);
  DevBuf<unsigned> cas(1);
  ASSERT_EQ(cudaMemset(counter.get(), 0, 8), cudaSuccess);
  ASSERT_EQ(cudaMemset(fsum.get(), 0, 4), cudaSuccess);
  ASSERT_EQ(cudaMemset(imax.get(), 0x80, 4), cudaSuccess);  // a large negative int
  ASSERT_EQ(cudaMemset(imin.get(), 0x7f, 4), cudaSuccess);  // a large positive int
  ASSERT_EQ(cudaMemset(cas.get(), 0, 4), cudaSuccess);
  const int n_blocks = 64, n = n_blocks * 256;
  ASSERT_EQ(emu_test::atomics(counter.get(), fsum.get(), imax.get(), imin.get(), cas.get(), n_blocks), cudaSuccess);
  EXPECT_EQ(counter.download()[0], static_cast<unsigned long long>(n));
  EXPECT_EQ(fsum.download()[0], static_cast<float>(n));
  EXPECT_EQ(imax.download()[0], n - 1);
  EXPECT_EQ(imin.download()[0], 0);
  EXPECT_EQ(cas.download()[0], static_cast<unsigned>(n));
}

// ---- memory intrinsics and memory API --------------------------------------------------------------

TEST(CudaEmuMemory, LdgChecksAlignmentAndAddressSpace) {
  DevBuf<uint4> src(2), out(1);
  const std::vector<uint4> v = {make_uint4(1, 2, 3, 4), make_uint4(5, 6, 7, 8)};
  src.upload(v);
  ASSERT_EQ(emu_test::ldg_u4(src.get() + 1, out.get()), cudaSuccess);
  EXPECT_EQ(out.download()[0].w, 8u);

  testing::internal::CaptureStderr();
  EXPECT_EQ(emu_test::ldg_u4(reinterpret_cast<const char*>(src.get()) + 4, out.get()), cudaErrorMisalignedAddress);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("misaligned address"), std::string::npos);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorMisalignedAddress);

  std::vector<uint4> heap(1);  // ordinary (pageable) host memory: not device-accessible
  testing::internal::CaptureStderr();
  EXPECT_EQ(emu_test::ldg_u4(heap.data(), out.get()), cudaErrorIllegalAddress);
  (void)testing::internal::GetCapturedStderr();
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorIllegalAddress);

  PinnedBuf<uint4> pinned(1);
  pinned[0] = make_uint4(9, 10, 11, 12);
  ASSERT_EQ(emu_test::ldg_u4(pinned.get(), out.get()), cudaSuccess);
  EXPECT_EQ(out.download()[0].x, 9u);

  // Freed memory is no longer accessible, even right after a successful access to it.
  void* gone = nullptr;
  ASSERT_EQ(cudaMalloc(&gone, 64), cudaSuccess);
  ASSERT_EQ(emu_test::ldg_u4(gone, out.get()), cudaSuccess);
  ASSERT_EQ(cudaFree(gone), cudaSuccess);
  testing::internal::CaptureStderr();
  EXPECT_EQ(emu_test::ldg_u4(gone, out.get()), cudaErrorIllegalAddress);
  (void)testing::internal::GetCapturedStderr();
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorIllegalAddress);
}

TEST(CudaEmuMemory, CapacityAndMemGetInfo) {
  const size_t was = cuda_emu::set_device_memory_capacity(size_t{1} << 20);
  const size_t used_before = cuda_emu::device_memory_used();
  void* big = nullptr;
  EXPECT_EQ(cudaMalloc(&big, size_t{2} << 20), cudaErrorMemoryAllocation);
  EXPECT_EQ(big, nullptr);
  EXPECT_EQ(cudaGetLastError(), cudaErrorMemoryAllocation);
  void* small = nullptr;
  ASSERT_EQ(cudaMalloc(&small, 1000), cudaSuccess);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small) % 256, 0u);
  size_t free_bytes = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total), cudaSuccess);
  EXPECT_EQ(total, size_t{1} << 20);
  EXPECT_EQ(free_bytes, total - used_before - 1024);  // rounded to 256 bytes
  // Fresh device memory is 0xff bytes (NaN in every float type).
  std::vector<unsigned char> bytes(1000);
  ASSERT_EQ(cudaMemcpy(bytes.data(), small, 1000, cudaMemcpyDeviceToHost), cudaSuccess);
  for (unsigned char b : bytes) ASSERT_EQ(b, 0xff);
  ASSERT_EQ(cudaFree(small), cudaSuccess);
  cuda_emu::set_device_memory_capacity(was);
}

TEST(CudaEmuMemory, CopyDirectionsAndRangesAreChecked) {
  DevBuf<float> d(16);
  std::vector<float> h(16, 1.0f), h2(16);
  testing::internal::CaptureStderr();
  EXPECT_EQ(cudaMemcpy(h2.data(), h.data(), 64, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(d.get(), h.data(), 64, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(d.get(), h.data(), 68, cudaMemcpyHostToDevice), cudaErrorInvalidValue);  // past the end
  EXPECT_EQ(cudaMemcpy(d.get() + 1, h.data(), 64, cudaMemcpyDefault), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemset(h.data(), 0, 64), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpyAsync(d.get(), d.get(), 64, cudaMemcpyHostToDevice, nullptr), cudaErrorInvalidValue);
  (void)testing::internal::GetCapturedStderr();
  EXPECT_EQ(cudaFree(h.data()), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFreeHost(h.data()), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);

  EXPECT_EQ(cudaMemcpy(d.get(), h.data(), 64, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(h2.data(), d.get(), 64, cudaMemcpyDefault), cudaSuccess);
  EXPECT_EQ(h2[15], 1.0f);
  // 2D: a 4 x 3 window with pitches.
  std::vector<float> src(5 * 3), dst(6 * 3, 0.0f);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i);
  EXPECT_EQ(cudaMemcpy2D(d.get(), 5 * 4, src.data(), 5 * 4, 4 * 4, 3, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy2D(dst.data(), 6 * 4, d.get(), 5 * 4, 4 * 4, 3, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(dst[6 + 3], 8.0f);
  EXPECT_EQ(dst[6 + 4], 0.0f);
  EXPECT_EQ(cudaMemcpy2D(dst.data(), 2, d.get(), 5 * 4, 4 * 4, 3, cudaMemcpyDeviceToHost), cudaErrorInvalidPitchValue);
  (void)cudaGetLastError();

  cudaPointerAttributes attr;
  ASSERT_EQ(cudaPointerGetAttributes(&attr, d.get() + 3), cudaSuccess);
  EXPECT_EQ(attr.type, cudaMemoryTypeDevice);
  ASSERT_EQ(cudaPointerGetAttributes(&attr, h.data()), cudaSuccess);
  EXPECT_EQ(attr.type, cudaMemoryTypeUnregistered);
}

TEST(CudaEmuMemory, HostRegistration) {
  std::vector<float> h(64, 2.0f);
  ASSERT_EQ(cudaHostRegister(h.data(), 64 * sizeof(float), cudaHostRegisterReadOnly), cudaSuccess);
  EXPECT_EQ(cudaHostRegister(h.data() + 8, 16, cudaHostRegisterDefault), cudaErrorHostMemoryAlreadyRegistered);
  EXPECT_EQ(cudaHostRegister(h.data(), 16, 0x100), cudaErrorInvalidValue);
  DevBuf<float> d(64);
  EXPECT_EQ(cudaMemcpy(d.get(), h.data(), 256, cudaMemcpyHostToDevice), cudaSuccess);
  testing::internal::CaptureStderr();
  EXPECT_EQ(cudaMemcpy(h.data(), d.get(), 256, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);  // read-only
  (void)testing::internal::GetCapturedStderr();
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);  // failed calls set the last error
  // Registered memory is device-accessible: a kernel may read it.
  DevBuf<uint4> out(1);
  ASSERT_EQ(emu_test::ldg_u4(h.data(), out.get()), cudaSuccess);
  EXPECT_EQ(cudaHostUnregister(h.data() + 1), cudaErrorHostMemoryNotRegistered);
  EXPECT_EQ(cudaHostUnregister(h.data()), cudaSuccess);
  EXPECT_EQ(cudaHostUnregister(h.data()), cudaErrorHostMemoryNotRegistered);
  (void)cudaGetLastError();
}

TEST(CudaEmuMemory, ConstantMemoryThroughSymbols) {
  const float values[4] = {1.5f, -2.0f, 3.25f, 8.0f};
  DevBuf<float> out(4);
  ASSERT_EQ(emu_test::constant_table(values, out.get()), cudaSuccess);
  const auto got = out.download();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[static_cast<size_t>(i)], 2.0f * values[i]);
}

// ---- fp16 / bf16 -------------------------------------------------------------------------------------

std::vector<float> conversion_inputs() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.0f, 65520.0f, -65520.0f, 1e10f,
                          5.96046448e-8f /* 2^-24 */, 2.98023224e-8f /* 2^-25: tie to 0 */,
                          4.47034836e-8f /* 3 * 2^-26 */, 6.10351562e-5f, 6.09755516e-5f,
                          1.00048828f /* 1 + 2^-11: tie to even */, 1.00146484f /* 1 + 3 * 2^-11 */,
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
                          3.3895314e38f, 1.0039062f /* 1 + 2^-8: bf16 tie */, 1.01171875f};
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t bits = rng();
    float f;
    std::memcpy(&f, &bits, 4);
    v.push_back(f);
    v.push_back(std::ldexp(static_cast<float>(rng() % 4096) / 4096.0f + 1.0f, static_cast<int>(rng() % 50) - 30));
  }
  return v;
}

TEST(CudaEmuFp16, ConversionsMatchTheReferenceBitForBit) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto u = static_cast<uint16_t>(h);
    const float a = __half2float(__ushort_as_half(u)), b = qmodel::f16_to_float(u);
    ASSERT_EQ(std::memcmp(&a, &b, 4), 0) << std::hex << h;
    const float c = __bfloat162float(__ushort_as_bfloat16(u)), d = qmodel::bf16_to_float(u);
    ASSERT_EQ(std::memcmp(&c, &d, 4), 0) << std::hex << h;
  }
  for (float f : conversion_inputs()) {
    const uint16_t h = __half_as_ushort(__float2half_rn(f)), bf = __bfloat16_as_ushort(__float2bfloat16_rn(f));
    if (std::isnan(f)) {  // the hardware returns the canonical NaN
      EXPECT_EQ(h, 0x7fffu);
      EXPECT_EQ(bf, 0x7fffu);
      continue;
    }
    ASSERT_EQ(h, qmodel::float_to_f16(f)) << f;
    ASSERT_EQ(bf, qmodel::float_to_bf16(f)) << f;
    ASSERT_EQ(__half_as_ushort(__float2half(f)), h);
    ASSERT_EQ(__half_as_ushort(__half(f)), h);
    ASSERT_EQ(__bfloat16_as_ushort(__nv_bfloat16(f)), bf);
  }
}

TEST(CudaEmuFp16, DirectedRoundingArithmeticAndPairs) {
  EXPECT_EQ(__half_as_ushort(__float2half_rz(65520.0f)), 0x7bffu);  // max finite, not inf
  EXPECT_EQ(__half_as_ushort(__float2half_rz(-1.00146484f)), 0xbc01u);
  EXPECT_EQ(__half_as_ushort(__float2half_ru(1.00001f)), 0x3c01u);
  EXPECT_EQ(__half_as_ushort(__float2half_rd(-1.00001f)), 0xbc01u);
  EXPECT_EQ(__bfloat16_as_ushort(__float2bfloat16_rz(1.0078f)), 0x3f80u);
  // double -> half rounds once: 1 + 2^-11 + 2^-40 is above the tie (double -> float -> half is not).
  EXPECT_EQ(__half_as_ushort(__double2half(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40))), 0x3c01u);
  const __half a = __float2half(1.5f), b = __float2half(2.25f);
  EXPECT_EQ(__half2float(__hadd(a, b)), 3.75f);
  EXPECT_EQ(__half2float(__hmul(a, b)), 3.375f);
  EXPECT_EQ(__half2float(__hfma(a, b, __float2half(-3.375f))), 0.0f);
  EXPECT_EQ(__half2float(a * b - b), 1.125f);
  EXPECT_TRUE(__hisnan(__float2half(std::nanf(""))));
  EXPECT_EQ(__hisinf(__float2half(-1e9f)), -1);
  EXPECT_EQ(__half_as_ushort(__habs(__float2half(-0.0f))), 0u);
  const __nv_bfloat162 p = __floats2bfloat162_rn(1.0f, -2.0f);
  const float2 f = __bfloat1622float2(p);
  EXPECT_EQ(f.x, 1.0f);
  EXPECT_EQ(f.y, -2.0f);
  EXPECT_EQ(__high2float(p), -2.0f);
  const __half2 hp = __float22half2_rn(make_float2(0.5f, 65536.0f));
  EXPECT_EQ(__low2float(hp), 0.5f);
  EXPECT_TRUE(std::isinf(__high2float(hp)));
  static_assert(std::is_trivially_copyable<__half>::value && std::is_trivially_copyable<__nv_bfloat162>::value,
                "16-bit types are trivially copyable");
}

// ---- streams, events, capture, graphs ---------------------------------------------------------------------

TEST(CudaEmuGraphs, CaptureRecordsAndReplayUsesArgumentsByValue) {
  const int n = 300;
  DevBuf<float> x(n), y(n);
  PinnedBuf<float> in(n), out(n);
  for (int i = 0; i < n; ++i) {
    in[static_cast<size_t>(i)] = static_cast<float>(i);
    out[static_cast<size_t>(i)] = -1.0f;
  }
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  cudaStreamCaptureStatus status;
  ASSERT_EQ(cudaStreamIsCapturing(s, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusActive);
  ASSERT_EQ(cudaMemcpyAsync(x.get(), in.get(), n * sizeof(float), cudaMemcpyHostToDevice, s), cudaSuccess);
  float a = 1.5f;
  ASSERT_EQ(emu_test::add(y.get(), x.get(), a, n, s), cudaSuccess);
  a = 100.0f;  // the captured launch keeps 1.5
  ASSERT_EQ(emu_test::add(y.get(), y.get(), 2.0f, n, s), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(out.get(), y.get(), n * sizeof(float), cudaMemcpyDeviceToHost, s), cudaSuccess);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  ASSERT_NE(graph, nullptr);
  EXPECT_EQ(out[0], -1.0f) << "captured work must not run";

  size_t n_nodes = 0;
  ASSERT_EQ(cudaGraphGetNodes(graph, nullptr, &n_nodes), cudaSuccess);
  ASSERT_EQ(n_nodes, 4u);
  std::vector<cudaGraphNode_t> nodes(n_nodes);
  ASSERT_EQ(cudaGraphGetNodes(graph, nodes.data(), &n_nodes), cudaSuccess);
  const cudaGraphNodeType want[] = {cudaGraphNodeTypeMemcpy, cudaGraphNodeTypeKernel, cudaGraphNodeTypeKernel,
                                    cudaGraphNodeTypeMemcpy};
  for (size_t i = 0; i < 4; ++i) {
    cudaGraphNodeType type;
    ASSERT_EQ(cudaGraphNodeGetType(nodes[i], &type), cudaSuccess);
    EXPECT_EQ(type, want[i]);
  }

  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphDestroy(graph), cudaSuccess);  // the exec keeps its own copy
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  for (int i = 0; i < n; ++i) ASSERT_EQ(out[static_cast<size_t>(i)], static_cast<float>(i) + 3.5f) << i;
  // The memcpy node reads the pinned source when it runs: new inputs, same kernel arguments.
  for (int i = 0; i < n; ++i) in[static_cast<size_t>(i)] = static_cast<float>(2 * i);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  for (int i = 0; i < n; ++i) ASSERT_EQ(out[static_cast<size_t>(i)], static_cast<float>(2 * i) + 3.5f) << i;
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
}

TEST(CudaEmuGraphs, SynchronousCallsDuringCaptureInvalidateIt) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  DevBuf<float> d(4);
  float h[4] = {};
  cudaGraph_t graph = nullptr;

  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(h, d.get(), sizeof(h), cudaMemcpyDeviceToHost), cudaErrorStreamCaptureUnsupported);
  cudaStreamCaptureStatus status;
  ASSERT_EQ(cudaStreamIsCapturing(s, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusInvalidated);
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(graph, nullptr);

  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);

  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);

  // Relaxed capture allows the "unsafe" calls.
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&p, 16), cudaSuccess);
  ASSERT_EQ(cudaFree(p), cudaSuccess);
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  ASSERT_EQ(cudaGraphDestroy(graph), cudaSuccess);

  // A blocking stream's capture and the legacy default stream: the implicit dependency is an error.
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(emu_test::add(d.get(), d.get(), 1.0f, 4, nullptr), cudaErrorStreamCaptureImplicit);
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);

  EXPECT_EQ(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorIllegalState);
  (void)cudaGetLastError();
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
}

TEST(CudaEmuGraphs, ForkJoinAcrossStreams) {
  const int n = 64;
  DevBuf<float> x(n), y(n), z(n);
  ASSERT_EQ(cudaMemset(x.get(), 0, n * sizeof(float)), cudaSuccess);
  cudaStream_t s1 = nullptr, s2 = nullptr;
  cudaEvent_t e1 = nullptr, e2 = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&e1, cudaEventDisableTiming), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&e2, cudaEventDisableTiming), cudaSuccess);
  cudaGraph_t graph = nullptr;

  for (bool join : {false, true}) {
    ASSERT_EQ(cudaStreamBeginCapture(s1, cudaStreamCaptureModeGlobal), cudaSuccess);
    ASSERT_EQ(emu_test::add(y.get(), x.get(), 1.0f, n, s1), cudaSuccess);
    ASSERT_EQ(cudaEventRecord(e1, s1), cudaSuccess);
    ASSERT_EQ(cudaStreamWaitEvent(s2, e1, 0), cudaSuccess);  // fork: s2 joins the capture
    cudaStreamCaptureStatus status;
    ASSERT_EQ(cudaStreamIsCapturing(s2, &status), cudaSuccess);
    EXPECT_EQ(status, cudaStreamCaptureStatusActive);
    ASSERT_EQ(emu_test::add(z.get(), x.get(), 2.0f, n, s2), cudaSuccess);
    if (join) {
      ASSERT_EQ(cudaEventRecord(e2, s2), cudaSuccess);
      ASSERT_EQ(cudaStreamWaitEvent(s1, e2, 0), cudaSuccess);
      ASSERT_EQ(cudaStreamEndCapture(s1, &graph), cudaSuccess);
    } else {
      EXPECT_EQ(cudaStreamEndCapture(s1, &graph), cudaErrorStreamCaptureUnjoined);
      (void)cudaGetLastError();
    }
  }
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, s1), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s1), cudaSuccess);
  EXPECT_EQ(y.download()[5], 1.0f);
  EXPECT_EQ(z.download()[5], 2.0f);
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(e1), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(e2), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s1), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s2), cudaSuccess);
}

TEST(CudaEmuGraphs, EventsTimeAndValidateHandles) {
  cudaEvent_t a = nullptr, b = nullptr, untimed = nullptr;
  ASSERT_EQ(cudaEventCreate(&a), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&b), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&untimed, cudaEventDisableTiming), cudaSuccess);
  float ms = -1.0f;
  EXPECT_EQ(cudaEventElapsedTime(&ms, a, b), cudaErrorInvalidResourceHandle);  // not recorded yet
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidResourceHandle);
  ASSERT_EQ(cudaEventRecord(a, nullptr), cudaSuccess);
  DevBuf<int> out(4);
  ASSERT_EQ(emu_test::block_sum(out.get(), 4, 256), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(b, nullptr), cudaSuccess);
  ASSERT_EQ(cudaEventSynchronize(b), cudaSuccess);
  ASSERT_EQ(cudaEventElapsedTime(&ms, a, b), cudaSuccess);
  EXPECT_GE(ms, 0.0f);
  ASSERT_EQ(cudaEventRecord(untimed, nullptr), cudaSuccess);
  EXPECT_EQ(cudaEventElapsedTime(&ms, a, untimed), cudaErrorInvalidResourceHandle);
  EXPECT_EQ(cudaEventQuery(a), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(a), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(a), cudaErrorInvalidResourceHandle);
  EXPECT_EQ(cudaEventDestroy(b), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(untimed), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(reinterpret_cast<cudaStream_t>(out.get())), cudaErrorInvalidResourceHandle);
  (void)cudaGetLastError();
}

// ---- launches and device --------------------------------------------------------------------------

TEST(CudaEmuLaunch, InvalidConfigurationsAreRejectedWithoutRunning) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(emu_test::launch_with_block(dim3(1), dim3(1025)), cudaErrorInvalidConfiguration);
  EXPECT_EQ(emu_test::launch_with_block(dim3(1), dim3(32, 32, 2)), cudaErrorInvalidConfiguration);
  EXPECT_EQ(emu_test::launch_with_block(dim3(1), dim3(1, 1, 65)), cudaErrorInvalidConfiguration);
  EXPECT_EQ(emu_test::launch_with_block(dim3(0), dim3(32)), cudaErrorInvalidConfiguration);
  EXPECT_EQ(emu_test::launch_with_block(dim3(1, 65536), dim3(32)), cudaErrorInvalidConfiguration);
  DevBuf<int> out(2);
  EXPECT_EQ(emu_test::dynamic_shared(out.get(), 64 << 10, false), cudaErrorInvalidValue);  // > 48 KiB, no opt-in
  EXPECT_EQ(emu_test::dynamic_shared(out.get(), 300 << 10, true), cudaErrorInvalidValue);  // > 227 KiB
  (void)testing::internal::GetCapturedStderr();
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // each error was returned (and cleared) already
  EXPECT_EQ(emu_test::launch_with_block(dim3(7, 3, 2), dim3(8, 4, 2)), cudaSuccess);
}

TEST(CudaEmuLaunch, DynamicSharedMemoryIsPoisonedPerBlock) {
  DevBuf<int> out(2);
  ASSERT_EQ(emu_test::dynamic_shared(out.get(), 100 << 10, true), cudaSuccess);
  const auto got = out.download();
  EXPECT_EQ(got[0], 100 << 10);
  EXPECT_EQ(got[1], 1);
}

TEST(CudaEmuDevice, PropertiesAndNoDeviceMode) {
  int n = -1;
  ASSERT_EQ(cudaGetDeviceCount(&n), cudaSuccess);
  EXPECT_EQ(n, 1);
  cudaDeviceProp prop;
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  EXPECT_STREQ(prop.name, "qmodel CUDA emulator (CPU)");
  EXPECT_EQ(prop.major, 9);
  EXPECT_EQ(prop.warpSize, 32);
  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  EXPECT_EQ(sms, 132);
  EXPECT_EQ(cudaSetDevice(1), cudaErrorInvalidDevice);
  EXPECT_STREQ(cudaGetErrorName(cudaErrorInvalidDevice), "cudaErrorInvalidDevice");
  EXPECT_STREQ(cudaGetErrorString(cudaErrorMemoryAllocation), "out of memory");

  EXPECT_TRUE(cuda_emu::set_device_present(false));
  EXPECT_EQ(cudaGetDeviceCount(&n), cudaErrorNoDevice);
  EXPECT_EQ(n, 0);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorNoDevice);
  cublasLtHandle_t handle = nullptr;
  EXPECT_EQ(cublasLtCreate(&handle), CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT_FALSE(cuda_emu::set_device_present(true));
  (void)cudaGetLastError();
  EXPECT_GE(cuda_emu::worker_threads(), 1);
}

// ---- cuBLASLt ------------------------------------------------------------------------------------------

struct LtCase {
  cudaDataType_t in, out;
  cublasOperation_t ta, tb;
  bool bias, beta;
};

float round_to(cudaDataType_t t, float v) {
  if (t == CUDA_R_16BF) return qmodel::bf16_to_float(qmodel::float_to_bf16(v));
  if (t == CUDA_R_16F) return qmodel::f16_to_float(qmodel::float_to_f16(v));
  return v;
}

void store_as(cudaDataType_t t, std::vector<unsigned char>& buf, size_t i, float v) {
  if (t == CUDA_R_32F) {
    std::memcpy(buf.data() + 4 * i, &v, 4);
  } else {
    const uint16_t h = t == CUDA_R_16BF ? qmodel::float_to_bf16(v) : qmodel::float_to_f16(v);
    std::memcpy(buf.data() + 2 * i, &h, 2);
  }
}

float load_as(cudaDataType_t t, const std::vector<unsigned char>& buf, size_t i) {
  if (t == CUDA_R_32F) {
    float v;
    std::memcpy(&v, buf.data() + 4 * i, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, buf.data() + 2 * i, 2);
  return t == CUDA_R_16BF ? qmodel::bf16_to_float(h) : qmodel::f16_to_float(h);
}

// Column-major op(A)[m, k] op(B)[k, n] + C with padded leading dimensions, 3 strided batches.
void run_lt_case(const LtCase& c) {
  const int64_t m = 5, n = 7, k = 9, batch = 3;
  const bool ta = c.ta != CUBLAS_OP_N, tb = c.tb != CUBLAS_OP_N;
  const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
  const int64_t lda = a_rows + 3, ldb = b_rows + 1, ldc = m + 2;
  const int64_t sa = lda * a_cols + 5, sb = ldb * b_cols, sc = ldc * n;
  const size_t ei = c.in == CUDA_R_32F ? 4 : 2, eo = c.out == CUDA_R_32F ? 4 : 2;
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<unsigned char> ha(static_cast<size_t>(sa * batch) * ei), hb(static_cast<size_t>(sb * batch) * ei),
      hc(static_cast<size_t>(sc * batch) * eo), hd(hc.size());
  for (size_t i = 0; i < ha.size() / ei; ++i) store_as(c.in, ha, i, dist(rng));
  for (size_t i = 0; i < hb.size() / ei; ++i) store_as(c.in, hb, i, dist(rng));
  for (size_t i = 0; i < hc.size() / eo; ++i) store_as(c.out, hc, i, dist(rng));
  std::vector<float> bias(static_cast<size_t>(m));
  for (float& v : bias) v = dist(rng);

  DevBuf<unsigned char> da(ha.size()), db(hb.size()), dc(hc.size()), dd(hd.size());
  DevBuf<float> dbias(bias.size());
  da.upload(ha);
  db.upload(hb);
  dc.upload(hc);
  dbias.upload(bias);

  cublasLtHandle_t lt = nullptr;
  ASSERT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulDesc_t op = nullptr;
  ASSERT_EQ(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &c.ta, sizeof(c.ta)), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &c.tb, sizeof(c.tb)), CUBLAS_STATUS_SUCCESS);
  if (c.bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = CUDA_R_32F;
    const float* bp = dbias.get();
    ASSERT_EQ(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof(bp)), CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)),
              CUBLAS_STATUS_SUCCESS);
  }
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  const auto u = [](int64_t v) { return static_cast<uint64_t>(v); };
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&la, c.in, u(a_rows), u(a_cols), lda), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&lb, c.in, u(b_rows), u(b_cols), ldb), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&lc, c.out, u(m), u(n), ldc), CUBLAS_STATUS_SUCCESS);
  const int32_t batch32 = static_cast<int32_t>(batch);
  for (auto [l, stride] : {std::pair<cublasLtMatrixLayout_t, int64_t>{la, sa}, {lb, sb}, {lc, sc}}) {
    ASSERT_EQ(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch32, sizeof(batch32)),
              CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)),
              CUBLAS_STATUS_SUCCESS);
  }
  cublasLtMatmulPreference_t pref = nullptr;
  ASSERT_EQ(cublasLtMatmulPreferenceCreate(&pref), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulHeuristicResult_t heur[2];
  int n_algos = 0;
  ASSERT_EQ(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 2, heur, &n_algos), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(n_algos, 1);
  const float alpha = 0.75f, beta = c.beta ? 0.5f : 0.0f;
  ASSERT_EQ(cublasLtMatmul(lt, op, &alpha, da.get(), la, db.get(), lb, &beta, dc.get(), lc, dd.get(), lc, &heur[0].algo,
                           nullptr, 0, nullptr),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  hd = dd.download();

  for (int64_t bt = 0; bt < batch; ++bt) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0.0, mag = 0.0;
        for (int64_t l = 0; l < k; ++l) {
          const float av = load_as(c.in, ha, static_cast<size_t>(bt * sa + (ta ? l + i * lda : i + l * lda)));
          const float bv = load_as(c.in, hb, static_cast<size_t>(bt * sb + (tb ? j + l * ldb : l + j * ldb)));
          acc += static_cast<double>(av) * bv;
          mag += std::fabs(static_cast<double>(av) * bv);
        }
        double want = alpha * acc;
        if (c.beta) want += beta * load_as(c.out, hc, static_cast<size_t>(bt * sc + i + j * ldc));
        if (c.bias) want += bias[static_cast<size_t>(i)];
        const float got = load_as(c.out, hd, static_cast<size_t>(bt * sc + i + j * ldc));
        const double tol = 1e-5 * (mag + 2.0) + std::fabs(round_to(c.out, static_cast<float>(want)) - want);
        ASSERT_LE(std::fabs(got - want), tol) << "batch " << bt << " (" << i << ", " << j << ")";
      }
    }
  }
  // The padding between columns of D is never written (still the 0xff poison).
  if (c.out == CUDA_R_32F) EXPECT_TRUE(std::isnan(load_as(c.out, hd, static_cast<size_t>(m))));

  // A layout that does not match op(A): what cuBLASLt answers.
  cublasLtMatrixLayout_t wrong = nullptr;
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&wrong, c.in, u(a_cols), u(a_rows), a_cols), CUBLAS_STATUS_SUCCESS);
  testing::internal::CaptureStderr();
  EXPECT_EQ(cublasLtMatmulAlgoGetHeuristic(lt, op, wrong, lb, lc, lc, pref, 1, heur, &n_algos),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasLtMatmul(lt, op, &alpha, da.get(), wrong, db.get(), lb, &beta, dc.get(), lc, dd.get(), lc, nullptr,
                           nullptr, 0, nullptr),
            CUBLAS_STATUS_INVALID_VALUE);
  (void)testing::internal::GetCapturedStderr();
  EXPECT_EQ(cublasLtMatrixLayoutDestroy(wrong), CUBLAS_STATUS_SUCCESS);

  EXPECT_EQ(cublasLtMatmulPreferenceDestroy(pref), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatrixLayoutDestroy(la), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatrixLayoutDestroy(lb), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatrixLayoutDestroy(lc), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatmulDescDestroy(op), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtDestroy(lt), CUBLAS_STATUS_SUCCESS);
}

TEST(CudaEmuCublasLt, MatmulMatchesANaiveLoopForEveryTransposeAndBatch) {
  for (cudaDataType_t in : {CUDA_R_32F, CUDA_R_16BF, CUDA_R_16F}) {
    for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T}) {
      for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T}) {
        const cudaDataType_t out = in == CUDA_R_16F ? CUDA_R_32F : in;
        SCOPED_TRACE("in " + std::to_string(in) + " ta " + std::to_string(ta) + " tb " + std::to_string(tb));
        run_lt_case({in, out, ta, tb, ta == CUBLAS_OP_T, tb == CUBLAS_OP_N});
      }
    }
  }
}

TEST(CudaEmuCublasLt, HostOperandsFaultAndCaptureRecords) {
  cublasLtHandle_t lt = nullptr;
  ASSERT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulDesc_t op = nullptr;
  ASSERT_EQ(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  cublasLtMatrixLayout_t l = nullptr;
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 4, 4, 4), CUBLAS_STATUS_SUCCESS);
  std::vector<float> host(16, 1.0f);
  DevBuf<float> a(16), d(16);
  a.upload(host);
  const float alpha = 1.0f, beta = 0.0f;
  testing::internal::CaptureStderr();
  EXPECT_EQ(cublasLtMatmul(lt, op, &alpha, host.data(), l, a.get(), l, &beta, nullptr, l, d.get(), l, nullptr, nullptr,
                           0, nullptr),
            CUBLAS_STATUS_SUCCESS);  // asynchronous, like the GPU: the fault shows at the next check
  EXPECT_NE(testing::internal::GetCapturedStderr().find("operand A"), std::string::npos);
  EXPECT_EQ(cudaGetLastError(), cudaErrorIllegalAddress);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorIllegalAddress);

  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(cublasLtMatmul(lt, op, &alpha, a.get(), l, a.get(), l, &beta, nullptr, l, d.get(), l, nullptr, nullptr, 0, s),
            CUBLAS_STATUS_SUCCESS);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  EXPECT_TRUE(std::isnan(d.download()[0])) << "captured matmul must not run";
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(d.download()[0], 4.0f);
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
  EXPECT_EQ(cublasLtMatrixLayoutDestroy(l), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatmulDescDestroy(op), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtDestroy(lt), CUBLAS_STATUS_SUCCESS);
  EXPECT_STREQ(cublasLtGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE");
}

}  // namespace
