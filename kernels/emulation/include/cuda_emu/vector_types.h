// CUDA's built-in vector types with the toolkit's sizes and alignments (uint4 / float4 / int4 /
// double2 / longlong2 16 bytes, uint2 / float2 8, ...), their make_* helpers, and dim3.
#pragma once

#include "cuda_emu/prelude.h"

#define CUDA_EMU_VEC2(T, name, align)                                             \
  struct alignas(align) name {                                                    \
    T x, y;                                                                       \
  };                                                                              \
  inline constexpr name make_##name(T x, T y) { return name{x, y}; }
#define CUDA_EMU_VEC3(T, name)                                                    \
  struct name {                                                                   \
    T x, y, z;                                                                    \
  };                                                                              \
  inline constexpr name make_##name(T x, T y, T z) { return name{x, y, z}; }
#define CUDA_EMU_VEC4(T, name, align)                                             \
  struct alignas(align) name {                                                    \
    T x, y, z, w;                                                                 \
  };                                                                              \
  inline constexpr name make_##name(T x, T y, T z, T w) { return name{x, y, z, w}; }

CUDA_EMU_VEC2(signed char, char2, 2)
CUDA_EMU_VEC2(unsigned char, uchar2, 2)
CUDA_EMU_VEC4(signed char, char4, 4)
CUDA_EMU_VEC4(unsigned char, uchar4, 4)
CUDA_EMU_VEC2(short, short2, 4)
CUDA_EMU_VEC2(unsigned short, ushort2, 4)
CUDA_EMU_VEC4(short, short4, 8)
CUDA_EMU_VEC4(unsigned short, ushort4, 8)
CUDA_EMU_VEC2(int, int2, 8)
CUDA_EMU_VEC2(unsigned int, uint2, 8)
CUDA_EMU_VEC3(int, int3)
CUDA_EMU_VEC3(unsigned int, uint3)
CUDA_EMU_VEC4(int, int4, 16)
CUDA_EMU_VEC4(unsigned int, uint4, 16)
CUDA_EMU_VEC2(long long, longlong2, 16)
CUDA_EMU_VEC2(unsigned long long, ulonglong2, 16)
CUDA_EMU_VEC2(float, float2, 8)
CUDA_EMU_VEC3(float, float3)
CUDA_EMU_VEC4(float, float4, 16)
CUDA_EMU_VEC2(double, double2, 16)

#undef CUDA_EMU_VEC2
#undef CUDA_EMU_VEC3
#undef CUDA_EMU_VEC4

static_assert(sizeof(uint4) == 16 && alignof(uint4) == 16, "uint4 layout");
static_assert(sizeof(float2) == 8 && alignof(float2) == 8, "float2 layout");
static_assert(sizeof(uchar4) == 4 && alignof(uchar4) == 4, "uchar4 layout");

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}  // NOLINT: implicit as in CUDA
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
