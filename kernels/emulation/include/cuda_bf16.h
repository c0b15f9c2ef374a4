// cuda_bf16.h for the CUDA emulator: __nv_bfloat16, __nv_bfloat162 and their conversions
// (cuda_emu/fp16.h, shared with cuda_fp16.h).
#pragma once

#include "cuda_emu/fp16.h"
