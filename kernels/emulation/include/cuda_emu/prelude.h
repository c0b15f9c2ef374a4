// Included first by every CUDA emulation header: refuses to mix with the real toolkit (whose types
// would clash, or worse, silently link against libcudart) and requires QMODEL_CUDA_EMULATION, which
// the build sets for every target compiled against the emulator (kernels/emulation/CMakeLists.txt).
#pragma once

#if !defined(QMODEL_CUDA_EMULATION)
#error "CUDA emulation headers need QMODEL_CUDA_EMULATION (use qmodel_add_emulated_cuda_sources or link qmodel_cuda_emu)"
#endif
#if defined(__CUDACC__) || defined(__DRIVER_TYPES_H__) || defined(__CUDA_RUNTIME_API_H__) || \
    defined(__VECTOR_TYPES_H__) || defined(__CUDA_FP16_H__) || defined(__CUDA_BF16_H__)
#error "the real CUDA toolkit headers (or nvcc) and the CUDA emulation headers in one translation unit"
#endif

// The emulated API level: CUDA 12.8 signatures (cudaGraphInstantiate with flags, ...).
#ifndef CUDART_VERSION
#define CUDART_VERSION 12080
#endif
