// Normalizer steps: NFC (see nfc.h), Prepend (only to non-empty text, as Hugging Face does) and
// Replace (literal or regex pattern).
#include "tokenizer/nfc.h"
#include "tokenizer/pipeline.h"

namespace qmodel::runtime::tok {

Status normalize(const std::vector<NormalizerStep>& steps, std::string* text) {
  std::vector<std::pair<size_t, size_t>> matches;
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case NormalizerStep::Kind::kNfc:
        *text = nfc(*text);
        break;
      case NormalizerStep::Kind::kPrepend:
        if (!text->empty()) text->insert(0, step.text);
        break;
      case NormalizerStep::Kind::kReplace: {
        QMODEL_RETURN_IF_ERROR(step.pattern->find_all(*text, &matches));
        if (matches.empty()) break;
        std::string out;
        size_t pos = 0;
        for (const auto& m : matches) {
          out.append(*text, pos, m.first - pos);
          out += step.text;
          pos = m.second;
        }
        out.append(*text, pos, std::string::npos);
        text->swap(out);
        break;
      }
    }
  }
  return Status::ok_status();
}

}  // namespace qmodel::runtime::tok
