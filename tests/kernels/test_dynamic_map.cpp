// The signed dynamic map (bnb create_dynamic_map as torch computes it) and dQuantize<0>'s search,
// midpoint rule and tie behaviour.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

TEST(DynamicMap, ShapeAndAnchors) {
  const auto code = dynamic_map_signed();
  ASSERT_EQ(code.size(), 256u);
  EXPECT_EQ(code[127], 0.0f);
  EXPECT_EQ(code[255], 1.0f);
  EXPECT_EQ(code[0], -0.99296875f);  // there is no -1.0
  EXPECT_EQ(code[128], 5.500000384017767e-07f);  // float32(0.55f * float32(1e-6))
  for (size_t i = 1; i < code.size(); ++i) EXPECT_LT(code[i - 1], code[i]) << i;
  // Symmetric around index 127 except for the lone +1.0 at the top.
  for (size_t k = 1; k <= 127; ++k) EXPECT_EQ(code[127 - k], -code[127 + k]) << k;
}

TEST(DynamicMap, OneDecadePerExponentWithDoublingLevels) {
  const auto code = dynamic_map_signed();
  for (int i = 0; i < 7; ++i) {
    const double lo = std::pow(10.0, i - 7), hi = std::pow(10.0, i - 6);
    int count = 0;
    for (size_t j = 128; j < 255; ++j) count += (code[j] > lo && code[j] < hi) ? 1 : 0;
    EXPECT_EQ(count, 1 << i) << "decade " << i;
  }
}

TEST(DynamicMap, MatchesPublishedDumpWhereFusedLinspaceMatters) {
  // Entries from a published printout of bnb's map (python doubles of the float32 values). These
  // are among the 42 where torch's fused start + step*i differs from the unfused formula.
  const auto code = dynamic_map_signed();
  struct Entry { size_t index; double value; };
  const Entry kEntries[] = {
      {18, -0.7398437261581421},  {20, -0.7117187976837158},   {25, -0.6414062976837158},
      {34, -0.5148437023162842},  {58, -0.17734375596046448},  {72, -0.07609374821186066},
      {116, -0.000493750034365803}, {137, 0.0003812500217463821}, {174, 0.053593751043081284},
      {63, -0.10703125596046448}, {64, -0.09859374910593033},  {126, -5.500000384017767e-07}};
  for (const Entry& e : kEntries) EXPECT_EQ(code[e.index], static_cast<float>(e.value)) << e.index;
}

TEST(DynamicQuantize, ExactCodeValuesMapToThemselves) {
  const auto code = dynamic_map_signed();
  for (size_t i = 0; i < code.size(); ++i) {
    EXPECT_EQ(quantize_dynamic_value_ref(code.data(), code[i]), i);
  }
}

TEST(DynamicQuantize, MidpointTiesKeepTheEvenSearchPivot) {
  // The search always ends on an even pivot p with x in (code[p-1], code[p+1]]; a value exactly on
  // the midpoint returns p: the lower code when p is the lower neighbour, the upper otherwise.
  const auto code = dynamic_map_signed();
  const float inf = std::numeric_limits<float>::infinity();
  for (size_t p = 0; p + 1 < code.size(); ++p) {
    const float mid = (code[p] + code[p + 1]) * 0.5f;
    ASSERT_GT(mid, code[p]);
    ASSERT_LT(mid, code[p + 1]);
    const size_t tie_winner = (p % 2 == 0) ? p : p + 1;
    EXPECT_EQ(quantize_dynamic_value_ref(code.data(), mid), tie_winner) << p;
    EXPECT_EQ(quantize_dynamic_value_ref(code.data(), std::nextafter(mid, inf)), p + 1) << p;
    EXPECT_EQ(quantize_dynamic_value_ref(code.data(), std::nextafter(mid, -inf)), p) << p;
  }
}

TEST(DynamicQuantize, OutOfRangeAndNan) {
  const auto code = dynamic_map_signed();
  EXPECT_EQ(quantize_dynamic_value_ref(code.data(), 1.5f), 255);
  EXPECT_EQ(quantize_dynamic_value_ref(code.data(), -1.0f), 0);
  EXPECT_EQ(quantize_dynamic_value_ref(code.data(), -7.0f), 0);
  EXPECT_EQ(quantize_dynamic_value_ref(code.data(), 0.0f), 127);
  EXPECT_EQ(quantize_dynamic_value_ref(code.data(), -0.0f), 127);
  // NaN fails every comparison, walks down to pivot 0 (as in CUDA).
  EXPECT_EQ(quantize_dynamic_value_ref(code.data(), std::numeric_limits<float>::quiet_NaN()), 0);
}

}  // namespace
}  // namespace qmodel::kernels
