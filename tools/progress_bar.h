// A one-line progress bar on stderr with rate and ETA. On a terminal it redraws in place at most
// ten times a second; otherwise (logs, CI) it prints a plain line every ten percent.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace qmodel::tools {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label) : label_(std::move(label)), tty_(::isatty(STDERR_FILENO) == 1) {}

  // done/total in bytes; `what` is shown after the numbers (e.g. the current tensor).
  void update(uint64_t done, uint64_t total, const std::string& what, bool final = false) {
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    if (tty_) {
      if (!final && std::chrono::duration<double>(now - last_draw_).count() < 0.1) return;
    } else {
      const int decile = static_cast<int>(frac * 10.0);
      if (!final && decile <= last_decile_) return;
      last_decile_ = decile;
    }
    last_draw_ = now;
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
    constexpr int kWidth = 28;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
    std::string shown = what.size() > 48 ? "..." + what.substr(what.size() - 45) : what;
    // GB for real models, MB for small ones, so the numbers always move.
    const bool gb = total >= 1000000000ull;
    const double unit = gb ? 1e9 : 1e6;
    std::fprintf(stderr, "%s%s [%s] %3.0f%% %.2f/%.2f %s %.2f %s/s ETA %s %s%s", tty_ ? "\r\033[K" : "",
                 label_.c_str(), bar.c_str(), frac * 100.0, static_cast<double>(done) / unit,
                 static_cast<double>(total) / unit, gb ? "GB" : "MB", rate / unit, gb ? "GB" : "MB",
                 format_seconds(eta).c_str(), shown.c_str(), tty_ && !final ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  static std::string format_seconds(double s) {
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
    else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
    else std::snprintf(buf, sizeof buf, "%.0fs", s);
    return buf;
  }

  std::string label_;
  bool tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace qmodel::tools
