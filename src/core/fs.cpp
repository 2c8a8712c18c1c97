#include "core/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>

#include "core/crypto.h"

namespace edgecoder::core::fs {
namespace {

Error fs_errno_error(std::string_view what, const std::filesystem::path& path, int err) {
  return make_error(err == ENOENT ? Errc::not_found : Errc::internal,
                    std::string(what) + " '" + path.string() + "': " + std::strerror(err));
}

// Closes a descriptor on every exit path; close errors after fsync carry no new information.
class FsFd {
 public:
  explicit FsFd(int fd) : fd_(fd) {}
  ~FsFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  FsFd(const FsFd&) = delete;
  FsFd& operator=(const FsFd&) = delete;
  int get() const { return fd_; }
  // Returns the close() result so a caller can report a deferred write error.
  int close_now() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

bool fs_write_all(int fd, std::string_view content) {
  const char* p = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

Result<void> ensure_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  const auto status = std::filesystem::status(dir, ec);
  if (std::filesystem::exists(status) && !std::filesystem::is_directory(status)) {
    std::string detail = "'";
    detail.append(dir.string()).append("' exists and is not a directory");
    return make_error(Errc::internal, std::move(detail));
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return make_error(Errc::internal,
                      "cannot create directory '" + dir.string() + "': " + ec.message());
  }
  if (::chmod(dir.c_str(), S_IRWXU) != 0) return fs_errno_error("cannot chmod 0700", dir, errno);
  return {};
}

Result<std::string> read_file(const std::filesystem::path& path) {
  const int raw_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw_fd < 0) return fs_errno_error("cannot open", path, errno);
  FsFd fd(raw_fd);
  std::string content;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fs_errno_error("cannot read", path, errno);
    }
    if (n == 0) break;
    content.append(buf, static_cast<std::size_t>(n));
  }
  return content;
}

Result<void> write_private_file(const std::filesystem::path& path, std::string_view content) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  // Same directory, so the rename is atomic; a random suffix plus O_EXCL means a concurrent
  // writer or a planted file/symlink can never be opened in our place.
  std::filesystem::path tmp = path;
  tmp += ".tmp." + crypto::random_hex(8);
  const int raw_fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, S_IRUSR | S_IWUSR);
  if (raw_fd < 0) return fs_errno_error("cannot create", tmp, errno);
  FsFd fd(raw_fd);
  auto fail = [&tmp](std::string_view what, int err) {
    ::unlink(tmp.c_str());
    return fs_errno_error(what, tmp, err);
  };
  // The umask may have removed bits but never adds any; fchmod pins exactly 0600.
  if (::fchmod(fd.get(), S_IRUSR | S_IWUSR) != 0) return Result<void>(fail("cannot chmod", errno));
  if (!fs_write_all(fd.get(), content)) return Result<void>(fail("cannot write", errno));
  if (::fsync(fd.get()) != 0) return Result<void>(fail("cannot fsync", errno));
  if (fd.close_now() != 0) return Result<void>(fail("cannot close", errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fs_errno_error("cannot rename temp file onto", path, err);
  }
  // The rename itself is durable only once the directory entry is synced.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return fs_errno_error("cannot open directory", dir, errno);
  FsFd dfd(dir_fd);
  if (::fsync(dfd.get()) != 0) return fs_errno_error("cannot fsync directory", dir, errno);
  return {};
}

std::filesystem::path default_data_dir() {
  // XDG says relative values are invalid and must be ignored.
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && xdg[0] == '/') {
    return std::filesystem::path(xdg) / "edgecoder";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] != '\0') {
    return std::filesystem::path(home) / ".local" / "share" / "edgecoder";
  }
  return std::filesystem::path("edgecoder-data");
}

}  // namespace edgecoder::core::fs
