// Small file-system helpers with the permissions EdgeCoder promises: private directories (0700)
// and private files (0600) written atomically and synced; and an owned file descriptor.
// Thread-safety: stateless functions; an Fd is used by one thread at a time.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/result.h"

namespace edgecoder::core::fs {

// An owned file descriptor (closed on destruction).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Creates `dir` (and parents) if missing and sets mode 0700 on it.
Result<void> ensure_private_dir(const std::filesystem::path& dir);

Result<std::string> read_file(const std::filesystem::path& path);

// Writes `content` to `path` via a temp file + fsync + rename, mode 0600.
Result<void> write_private_file(const std::filesystem::path& path, std::string_view content);

// $XDG_DATA_HOME/edgecoder, else $HOME/.local/share/edgecoder, else ./edgecoder-data.
std::filesystem::path default_data_dir();

}  // namespace edgecoder::core::fs
