#include "core/fs.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace edgecoder::core::fs {
namespace {

namespace stdfs = std::filesystem;

mode_t fs_test_mode(const stdfs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (stdfs::temp_directory_path() / "edgecoder-fs-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    stdfs::remove_all(dir_, ec);
  }
  stdfs::path dir_;
};

TEST_F(FsTest, EnsurePrivateDirCreatesParentsWithMode0700) {
  const auto target = dir_ / "a" / "b" / "c";
  ASSERT_TRUE(ensure_private_dir(target).has_value());
  EXPECT_TRUE(stdfs::is_directory(target));
  EXPECT_EQ(fs_test_mode(target), 0700U);
  // Idempotent, and tightens an existing directory that was too open.
  ASSERT_EQ(::chmod(target.c_str(), 0755), 0);
  ASSERT_TRUE(ensure_private_dir(target).has_value());
  EXPECT_EQ(fs_test_mode(target), 0700U);
}

TEST_F(FsTest, EnsurePrivateDirRejectsAFile) {
  const auto file = dir_ / "file";
  std::ofstream(file) << "x";
  auto r = ensure_private_dir(file);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().detail.find("not a directory"), std::string::npos) << r.error().detail;
  // The file is untouched.
  EXPECT_EQ(read_file(file).value(), "x");
}

TEST_F(FsTest, WritePrivateFileIsMode0600AndReadable) {
  const auto path = dir_ / "secret.token";
  const std::string content("line1\nline2\0binary", 18);
  ASSERT_TRUE(write_private_file(path, content).has_value());
  EXPECT_EQ(fs_test_mode(path), 0600U);
  EXPECT_EQ(read_file(path).value(), content);

  // Replacing keeps 0600 even if the old file was world-readable, and leaves no temp files.
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  ASSERT_TRUE(write_private_file(path, "new").has_value());
  EXPECT_EQ(fs_test_mode(path), 0600U);
  EXPECT_EQ(read_file(path).value(), "new");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : stdfs::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST_F(FsTest, WritePrivateFileUnderRestrictiveUmask) {
  const mode_t old = ::umask(0277);
  const auto path = dir_ / "umask.token";
  const auto r = write_private_file(path, "x");
  ::umask(old);
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  EXPECT_EQ(fs_test_mode(path), 0600U);
}

TEST_F(FsTest, WritePrivateFileEmptyContentAndMissingDir) {
  const auto path = dir_ / "empty";
  ASSERT_TRUE(write_private_file(path, "").has_value());
  EXPECT_EQ(read_file(path).value(), "");
  auto r = write_private_file(dir_ / "no-such-dir" / "f", "x");
  EXPECT_FALSE(r.has_value());
}

TEST_F(FsTest, ReadFileErrors) {
  auto missing = read_file(dir_ / "missing");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_NE(missing.error().detail.find("missing"), std::string::npos);
  auto directory = read_file(dir_);
  EXPECT_FALSE(directory.has_value());
}

TEST_F(FsTest, ReadFileLarge) {
  const std::string big(1 << 20, 'q');
  ASSERT_TRUE(write_private_file(dir_ / "big", big).has_value());
  EXPECT_EQ(read_file(dir_ / "big").value(), big);
}

// Restores an environment variable on scope exit.
class FsEnvGuard {
 public:
  explicit FsEnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  ~FsEnvGuard() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  FsEnvGuard(const FsEnvGuard&) = delete;
  FsEnvGuard& operator=(const FsEnvGuard&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(FsDataDirTest, DefaultDataDir) {
  FsEnvGuard xdg("XDG_DATA_HOME");
  FsEnvGuard home("HOME");
  ::setenv("XDG_DATA_HOME", "/xdg/data", 1);
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(default_data_dir(), stdfs::path("/xdg/data/edgecoder"));
  ::setenv("XDG_DATA_HOME", "relative/ignored", 1);
  EXPECT_EQ(default_data_dir(), stdfs::path("/home/someone/.local/share/edgecoder"));
  ::unsetenv("XDG_DATA_HOME");
  EXPECT_EQ(default_data_dir(), stdfs::path("/home/someone/.local/share/edgecoder"));
  ::unsetenv("HOME");
  EXPECT_EQ(default_data_dir(), stdfs::path("edgecoder-data"));
}

}  // namespace
}  // namespace edgecoder::core::fs
