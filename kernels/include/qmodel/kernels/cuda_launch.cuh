// QMODEL_LAUNCH(grid, block, shared_bytes, stream, kernel)(args...): a kernel launch that compiles
// both with nvcc (the triple-chevron syntax) and in the CPU emulation build
// (QMODEL_CUDA_EMULATION, see kernels/emulation/README.md), where g++ cannot parse `<<<`.
// The kernel comes last so that a template-id with commas (`gemv<Policy, T, 4>`) needs no
// extra parentheses. Every launch is followed by a check (kernels::check_launch).
#pragma once

#if defined(QMODEL_CUDA_EMULATION)
#include "cuda_emu/launch.h"
#define QMODEL_LAUNCH(grid, block, shared_bytes, stream, ...) \
  ::cuda_emu::make_launcher((grid), (block), (shared_bytes), (stream), &__VA_ARGS__)
#else
#define QMODEL_LAUNCH(grid, block, shared_bytes, stream, ...) \
  __VA_ARGS__<<<(grid), (block), (shared_bytes), (stream)>>>
#endif
