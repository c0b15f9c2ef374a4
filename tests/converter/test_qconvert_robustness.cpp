// qconvert under hostile conditions, run as a user would run it: SIGKILL, SIGINT and SIGTERM in the
// middle of converting a ~280 MB checkpoint, a full disk (a 3 MB tmpfs), a read-only output folder,
// output paths that are a directory or a dangling symbolic link, and a source file truncated while
// it is being converted. After each: a clear message, the documented exit status, and no output
// and no temporary file left behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "support/run_tool.h"
#include "support/temp_dir.h"

extern char** environ;

namespace qmodel {
namespace {

using testing::read_all;
using testing::run_tool;
using testing::TempDir;

std::vector<std::string> entries(const std::string& dir) { return testing::directory_entries(dir); }

std::string q(const std::string& s) { return "'" + s + "'"; }

// A running qconvert with its stdout and stderr going to files in `scratch`.
class Conversion {
 public:
  Conversion(const std::vector<std::string>& args, const std::string& scratch) : err_path_(scratch + "/qconvert.err") {
    std::vector<std::string> argv_s = {std::string(QMODEL_BIN_DIR) + "/qconvert"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, (scratch + "/qconvert.out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Conversion() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

  // Waits until the process has an open file under `out_dir` with at least `min_bytes` in it (the
  // output being written: an unnamed O_TMPFILE inode shows up as "<out_dir>/#N (deleted)"). False
  // if the process ended first or `timeout` passed.
  bool wait_until_writing(const std::string& out_dir, uint64_t min_bytes, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::string fd_dir = "/proc/" + std::to_string(pid_) + "/fd";
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        status_ = status;
        return false;
      }
      for (const std::string& fd : entries(fd_dir)) {
        char target[4096];
        const ssize_t n = ::readlink((fd_dir + "/" + fd).c_str(), target, sizeof(target) - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        if (std::string(target).rfind(out_dir + "/", 0) != 0) continue;
        struct stat st {};
        if (::stat((fd_dir + "/" + fd).c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) >= min_bytes) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }

  int wait() {
    if (!reaped_) {
      ::waitpid(pid_, &status_, 0);
      reaped_ = true;
    }
    return status_;
  }
  std::string err() const { return read_all(err_path_); }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::string err_path_;
};

// Checkpoints shared by the suite, written on first use: a ~280 MB f32 one in 4 shards (~1 s) for
// the tests that must catch qconvert mid-write, and the small default for the others.
class QconvertRobustness : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    delete root_;
    root_ = nullptr;
  }
  static std::string source(bool big) {
    if (root_ == nullptr) root_ = new TempDir();
    const std::string dir = root_->file(big ? "big" : "small");
    if (!std::filesystem::exists(dir)) {
      const std::string args = big ? " --preset tiny --dtype f32 --layers 96 --shards 4 --seed 3" : " --preset tiny --seed 3";
      const auto gen = run_tool("make_synthetic_model", q(dir) + args, root_->path());
      EXPECT_EQ(gen.exit_code, 0) << gen.err;
    }
    return dir;
  }

  // Starts a conversion of the big checkpoint into `out_dir`, waits until it has written 1 MB,
  // sends `sig`.
  static int interrupt_mid_write(const std::string& out_dir, int sig, std::string* err) {
    TempDir scratch;
    Conversion c({source(true), "-o", out_dir + "/model.qmodel", "--quant", "nf4", "--double-quant", "--threads", "1"},
                 scratch.path());
    EXPECT_GT(c.pid(), 0);
    EXPECT_TRUE(c.wait_until_writing(out_dir, 1 << 20, std::chrono::seconds(120)))
        << "qconvert ended (or stalled) before writing 1 MB: " << c.err();
    ::kill(c.pid(), sig);
    const int status = c.wait();
    *err = c.err();
    return status;
  }

  static TempDir* root_;
};
TempDir* QconvertRobustness::root_ = nullptr;

TEST_F(QconvertRobustness, SigkillMidWriteLeavesNothing) {
  TempDir out;
  std::string err;
  const int status = interrupt_mid_write(out.path(), SIGKILL, &err);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status << " " << err;
  EXPECT_TRUE(entries(out.path()).empty()) << "left behind: " << entries(out.path()).front();
}

TEST_F(QconvertRobustness, SigintAndSigtermMidWriteStopCleanly) {
  for (int sig : {SIGINT, SIGTERM}) {
    TempDir out;
    std::string err;
    const int status = interrupt_mid_write(out.path(), sig, &err);
    ASSERT_TRUE(WIFEXITED(status)) << "signal " << sig << ": status " << status << " " << err;
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig) << err;
    EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
    EXPECT_NE(err.find("nothing was written"), std::string::npos) << err;
    EXPECT_TRUE(entries(out.path()).empty()) << "signal " << sig << " left " << entries(out.path()).front();
  }
}

// A source shard cut short while qconvert reads it through its mapping: without the guard the
// process dies of SIGBUS ("Bus error"); with it, a message naming the shard and exit status 1.
TEST_F(QconvertRobustness, SourceTruncatedDuringConversionIsAClearError) {
  TempDir copy, out;
  const std::string src = copy.file("model");
  std::filesystem::copy(source(true), src);
  Conversion c({src, "-o", out.file("model.qmodel"), "--quant", "nf4", "--double-quant", "--threads", "1"}, copy.path());
  ASSERT_TRUE(c.wait_until_writing(out.path(), 1 << 20, std::chrono::seconds(120))) << c.err();
  const std::string last_shard = src + "/model-00004-of-00004.safetensors";
  ASSERT_EQ(::truncate(last_shard.c_str(), 4096), 0);
  const int status = c.wait();
  const std::string err = c.err();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status << " (killed by signal " << WTERMSIG(status) << ") " << err;
  EXPECT_EQ(WEXITSTATUS(status), 1) << err;
  EXPECT_NE(err.find(last_shard), std::string::npos) << err;
  EXPECT_NE(err.find("truncated or replaced while being read"), std::string::npos) << err;
  EXPECT_TRUE(entries(out.path()).empty());
}

// Root can mount a 3 MB tmpfs; elsewhere (no privileges, no mount namespace) the test skips.
TEST_F(QconvertRobustness, FullDiskIsAClearErrorAndLeavesNothing) {
  TempDir out;
  if (::mount("tmpfs", out.path().c_str(), "tmpfs", 0, "size=3m") != 0) {
    GTEST_SKIP() << "cannot mount a 3 MB tmpfs here (" << std::strerror(errno) << "): needs root";
  }
  const std::string target = out.file("model.qmodel");
  TempDir scratch;
  const auto r = run_tool("qconvert", q(source(true)) + " -o " + q(target) + " --quant nf4 -q", scratch.path());
  const std::vector<std::string> left = entries(out.path());
  ::umount(out.path().c_str());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(target), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_TRUE(left.empty()) << "left behind: " << left.front();
}

TEST_F(QconvertRobustness, ReadOnlyFolderIsAClearError) {
  TempDir out;
  bool mounted = false;
  if (::geteuid() == 0) {  // root ignores permission bits: make the folder a read-only mount instead
    mounted = ::mount("tmpfs", out.path().c_str(), "tmpfs", MS_RDONLY, "size=1m") == 0;
    if (!mounted) GTEST_SKIP() << "root without mount rights: a read-only folder cannot be made here";
  } else {
    ASSERT_EQ(::chmod(out.path().c_str(), 0555), 0);
  }
  const std::string target = out.file("model.qmodel");
  TempDir scratch;
  const auto r = run_tool("qconvert", q(source(false)) + " -o " + q(target) + " -q", scratch.path());
  const std::vector<std::string> left = entries(out.path());
  if (mounted) ::umount(out.path().c_str());
  ::chmod(out.path().c_str(), 0755);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(target), std::string::npos) << r.err;
  EXPECT_TRUE(r.err.find("Read-only file system") != std::string::npos ||
              r.err.find("Permission denied") != std::string::npos)
      << r.err;
  EXPECT_TRUE(left.empty());
}

TEST_F(QconvertRobustness, OutputThatIsADirectoryIsRefusedBeforeConverting) {
  TempDir out;
  const std::string dir = out.file("model.qmodel");
  ASSERT_TRUE(std::filesystem::create_directory(dir));
  for (const char* force : {"", " -f"}) {
    const auto r = run_tool("qconvert", q(source(false)) + " -o " + q(dir) + " -q" + force, out.path());
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find(dir + ": is a directory"), std::string::npos) << r.err;
  }
  EXPECT_EQ(entries(out.path()), std::vector<std::string>{"model.qmodel"});
  EXPECT_TRUE(entries(dir).empty());
}

// A dangling symbolic link is an existing name: refused without -f (before any work); with -f the
// link itself is replaced by the file (rename semantics), never written through.
TEST_F(QconvertRobustness, DanglingSymlinkOutput) {
  TempDir out;
  const std::string link = out.file("model.qmodel"), target = out.file("elsewhere.qmodel");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  const auto refused = run_tool("qconvert", q(source(false)) + " -o " + q(link) + " -q", out.path());
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find("symbolic link"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.out.find("Converted"), std::string::npos) << "refused only after converting";

  const auto forced = run_tool("qconvert", q(source(false)) + " -o " + q(link) + " -q -f", out.path());
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  struct stat st {};
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode)) << "the link should have been replaced by the output file";
  EXPECT_FALSE(std::filesystem::exists(target));
}

}  // namespace
}  // namespace qmodel
