// qtokenize: encode text to ids, or decode ids to text, with the tokenizer of a tokenizer.json (a
// tokenizer_config.json beside it is used too) or the one embedded in a .qmodel.
//   qtokenize FILE --text TEXT [--add-special]     prints ids separated by spaces
//   qtokenize FILE --decode "1 2 3" [--keep-special]  prints the text
// Errors go to stderr with exit status 1; usage errors exit 2.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "qmodel/format/reader.h"
#include "qmodel/runtime/tokenizer.h"

namespace {

using qmodel::Result;
using qmodel::Status;
using qmodel::StatusCode;

Result<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kIoError, path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status(StatusCode::kIoError, path + ": read failed");
  return ss.str();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Result<std::unique_ptr<qmodel::runtime::Tokenizer>> load(const std::string& path) {
  if (ends_with(path, ".qmodel")) {
    QMODEL_ASSIGN_OR_RETURN(std::unique_ptr<qmodel::format::ModelFile> file, qmodel::format::ModelFile::open(path));
    const qmodel::format::EmbeddedFile* json = file->header().find_file("tokenizer.json");
    if (json == nullptr) return Status(StatusCode::kNotFound, path + ": no embedded tokenizer.json");
    const qmodel::format::EmbeddedFile* config = file->header().find_file("tokenizer_config.json");
    return qmodel::runtime::Tokenizer::from_json(json->contents, config ? config->contents : std::string(),
                                                 path + ":tokenizer.json");
  }
  QMODEL_ASSIGN_OR_RETURN(std::string json, read_text(path));
  std::string config;
  const size_t slash = path.find_last_of('/');
  const std::string config_path = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + "tokenizer_config.json";
  if (std::ifstream(config_path)) {
    QMODEL_ASSIGN_OR_RETURN(config, read_text(config_path));
  }
  return qmodel::runtime::Tokenizer::from_json(json, config, path);
}

Result<std::vector<int32_t>> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    const long long v = std::strtoll(word.c_str(), &end, 10);
    if (*end != '\0' || v < INT32_MIN || v > INT32_MAX) {
      return Status(StatusCode::kInvalidArgument, "--decode: '" + word + "' is not a token id");
    }
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

int fail(const Status& status) {
  std::fprintf(stderr, "qtokenize: %s\n", status.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Encode or decode text with a tokenizer.json or a .qmodel's tokenizer"};
  std::string path, text, decode_ids;
  bool add_special = false, keep_special = false;
  app.add_option("file", path, "tokenizer.json or .qmodel")->required();
  auto* text_opt = app.add_option("--text", text, "text to encode");
  auto* decode_opt = app.add_option("--decode", decode_ids, "space-separated ids to decode");
  text_opt->excludes(decode_opt);
  app.add_flag("--add-special", add_special, "add BOS/EOS as the tokenizer's post-processor and config say");
  app.add_flag("--keep-special", keep_special, "with --decode: print special tokens too");
  try {
    app.parse(argc, argv);
    if (!*text_opt && !*decode_opt) throw CLI::RequiredError("--text or --decode");
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  auto tokenizer = load(path);
  if (!tokenizer.ok()) return fail(tokenizer.status());
  if (*decode_opt) {
    auto ids = parse_ids(decode_ids);
    if (!ids.ok()) return fail(ids.status());
    std::printf("%s\n", (*tokenizer)->decode(*ids, !keep_special).c_str());
    return 0;
  }
  auto ids = (*tokenizer)->encode(text, add_special);
  if (!ids.ok()) return fail(ids.status());
  std::string line;
  for (size_t i = 0; i < ids->size(); ++i) line += (i ? " " : "") + std::to_string((*ids)[i]);
  std::printf("%s\n", line.c_str());
  return 0;
}
