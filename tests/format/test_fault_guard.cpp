// fault_guard.h: a .qmodel truncated while it is mapped is reported by name and offset (exit 1),
// not a bare "Bus error"; registered temporary files are removed on the way out.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "format_test_util.h"
#include "qmodel/format/fault_guard.h"

namespace qmodel::format::test {
namespace {

TEST(FaultGuardDeathTest, TruncatedMappedFileIsReportedByName) {
  // "fast" (fork without exec): the child sees the paths computed here.
  ::testing::FLAGS_gtest_death_test_style = "fast";
  const std::string path = temp_path("truncated");
  const std::string temp = temp_path("registered_temp");
  TestModel m = make_test_model();
  ASSERT_TRUE(write_test_model(path, WriterOptions{}, m).ok());
  write_file(temp, {1, 2, 3});
  EXPECT_EXIT(
      {
        install_fault_guard("test");
        RegisteredTempFile registered(temp);
        auto f = ModelFile::open(path);
        if (!f.ok()) ::_exit(3);
        const BlobRef& last = (*f)->header().tensors.back().blobs.back();
        if (::truncate(path.c_str(), 100) != 0) ::_exit(4);
        auto bytes = (*f)->blob_bytes(last);
        volatile uint8_t sink = (*bytes)[0];  // faults: the page is gone from the file
        (void)sink;
        ::_exit(5);
      },
      ::testing::ExitedWithCode(1), "test: error: .*truncated.*: the file was truncated or replaced while being read");
  EXPECT_FALSE(std::ifstream(temp).good()) << "the registered temporary file should have been removed";
  std::remove(path.c_str());
  std::remove(temp.c_str());
}

// Faults outside every registered mapping keep their meaning: the process still dies of them (by
// SIGBUS, or through a sanitizer's own SIGBUS report), and the guard does not claim them.
TEST(FaultGuard, OtherBusErrorsAreNotSwallowed) {
  const std::string path = temp_path("unregistered");
  const std::string err_path = temp_path("stderr");
  write_file(path, std::vector<uint8_t>(3 * 4096, 7));
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err < 0 || ::dup2(err, STDERR_FILENO) < 0) ::_exit(3);
    install_fault_guard("test");
    const int fd = ::open(path.c_str(), O_RDONLY);
    void* p = ::mmap(nullptr, 3 * 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED || ::truncate(path.c_str(), 10) != 0) ::_exit(4);
    volatile uint8_t sink = static_cast<const uint8_t*>(p)[2 * 4096];
    (void)sink;
    ::_exit(5);  // not reached: the access faults
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  const std::vector<uint8_t> err = read_file(err_path);
  const std::string text(err.begin(), err.end());
  EXPECT_FALSE(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) >= 3))
      << "the faulting access completed (status " << status << ")";
  EXPECT_EQ(text.find("truncated or replaced"), std::string::npos) << text;
  EXPECT_TRUE(WIFSIGNALED(status) || !text.empty()) << "died without a signal and without a report: " << status;
  std::remove(path.c_str());
  std::remove(err_path.c_str());
}

}  // namespace
}  // namespace qmodel::format::test
