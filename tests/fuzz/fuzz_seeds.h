// Every fuzz target defines qmodel_fuzz_seeds(): a few valid inputs built in code. libFuzzer ignores
// them (give it a corpus folder); the standalone replayer mutates them for its smoke run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

std::vector<std::string> qmodel_fuzz_seeds();
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
