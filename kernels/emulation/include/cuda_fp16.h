// cuda_fp16.h for the CUDA emulator: __half, __half2 and their conversions (cuda_emu/fp16.h).
#pragma once

#include "cuda_emu/fp16.h"
