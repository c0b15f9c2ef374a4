// qkeygen: make an Ed25519 key pair for signing .qmodel files.
//   qkeygen -o publisher            writes publisher.key (secret, mode 0600) and publisher.pub
//   qkeygen publisher               the same
//   qconvert ./model -o m.qmodel --sign publisher.key
//   qinspect m.qmodel --verify --trusted-key publisher.pub
// Exit codes: 0 success, 1 failure (nothing written), 2 usage error.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "qmodel/format/signing.h"

int main(int argc, char** argv) {
  CLI::App app{"Make an Ed25519 key pair for signing .qmodel files (qconvert --sign, qinspect --trusted-key)."};
  std::string prefix;
  bool force = false;
  std::string positional;
  app.add_option("-o,--output", prefix, "writes PREFIX.key (secret, mode 0600) and PREFIX.pub");
  app.add_option("prefix", positional, "the same as -o PREFIX");
  app.add_flag("-f,--force", force, "overwrite existing key files");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "qkeygen: %s\nRun with --help for usage.\n", e.what());
    return 2;
  }
  if (prefix.empty()) prefix = positional;
  if (prefix.empty() || (!positional.empty() && positional != prefix)) {
    std::fprintf(stderr, "qkeygen: give one output prefix (-o PREFIX or PREFIX)\nRun with --help for usage.\n");
    return 2;
  }
  auto key = qmodel::format::generate_secret_key();
  if (!key.ok()) {
    std::fprintf(stderr, "qkeygen: error: %s\n", key.status().to_string().c_str());
    return 1;
  }
  const qmodel::Status st = qmodel::format::write_key_files(key.value(), prefix, force);
  if (!st.ok()) {
    std::fprintf(stderr, "qkeygen: error: %s\n", st.to_string().c_str());
    return 1;
  }
  std::printf("wrote %s.key (secret: keep it private) and %s.pub (publish it); key %s\n", prefix.c_str(),
              prefix.c_str(), key->public_key().fingerprint().c_str());
  return 0;
}
