#include "ide/tools.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/fs.h"

namespace edgecoder::ide {
namespace tools_detail {

namespace stdfs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::array<std::string_view, 9> kReadTools = {
    "read_file", "list_directory", "search_files",    "git_status",        "git_diff",
    "git_log",   "git_fetch",      "github_list_prs", "github_list_issues"};
constexpr std::array<std::string_view, 8> kWriteTools = {
    "write_file", "edit_file", "run_shell", "git_commit",
    "git_branch", "git_push",  "git_pull",  "github_create_pr"};

constexpr std::chrono::milliseconds kLocalTimeout{10'000};    // grep, local git commands
constexpr std::chrono::milliseconds kNetworkTimeout{60'000};  // git fetch/push/pull
constexpr std::size_t kMaxEditBytes = 16 << 20;               // edit_file reads the whole file

ToolResult ok(std::string text) {
  ToolResult r;
  r.result = std::move(text);
  return r;
}

ToolResult fail(std::string text) {
  ToolResult r;
  r.error = std::move(text);
  return r;
}

// Invalid UTF-8 sequences become U+FFFD (as Node's utf8 decoding does), so that every result
// can be put into JSON.
std::string valid_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  const std::size_t n = in.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool good = len > 0 && i + len <= n && s[i + 1] >= lo && s[i + 1] <= hi;
    for (std::size_t k = 2; good && k < len; ++k) good = (s[i + k] & 0xC0) == 0x80;
    if (good) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::string trim_end(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// True when `inner` is `outer` or lies below it, by path components (so /proj-evil is not
// inside /proj). Both absolute.
bool inside(const stdfs::path& inner, const stdfs::path& outer) {
  const auto rel = inner.lexically_normal().lexically_relative(outer.lexically_normal());
  return !rel.empty() && *rel.begin() != "..";
}

std::string errno_text(int err) { return std::strerror(err); }

using core::fs::Fd;

// Opens a path that was checked to be symlink-free (a real path): openat2 refuses any symlink
// on the way, so a symlink swapped in after the check is not followed. Kernels without
// openat2 get O_NOFOLLOW for the final component.
int open_real(const stdfs::path& path, int flags, mode_t mode = 0) {
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) != 0 ? mode : 0;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const long fd = ::syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how);
  if (fd >= 0) return static_cast<int>(fd);
  if (errno != ENOSYS && errno != EPERM) return -1;
  return ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, mode);
}

// --- argument helpers -------------------------------------------------------------------------

std::string str_arg(const json& args, const char* key, std::string fallback = {}) {
  const auto it = args.find(key);
  if (it == args.end() || it->is_null()) return fallback;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number() || it->is_boolean()) return it->dump();
  return fallback;
}

std::int64_t int_arg(const json& args, const char* key, std::int64_t fallback) {
  const auto it = args.find(key);
  if (it == args.end()) return fallback;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_number_unsigned()) {
    return static_cast<std::int64_t>(std::min<std::uint64_t>(it->get<std::uint64_t>(), INT64_MAX));
  }
  if (it->is_number_float()) return static_cast<std::int64_t>(it->get<double>());
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (const std::exception&) {
      return fallback;
    }
  }
  return fallback;
}

bool bool_arg(const json& args, const char* key) {
  const auto it = args.find(key);
  if (it == args.end()) return false;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_string()) return it->get<std::string>() == "true";
  if (it->is_number()) return it->get<double>() != 0;
  return false;
}

// A ref, remote, branch or path handed to git or grep must never be read as an option.
std::optional<std::string> option_like(std::string_view what, const std::string& value) {
  if (!value.empty() && value.front() == '-') {
    return "Invalid " + std::string(what) + " (must not start with '-'): " + value;
  }
  return std::nullopt;
}

// --- paths ------------------------------------------------------------------------------------

struct Target {
  stdfs::path real;  // the real path; for a missing file, the real deepest ancestor + the rest
  std::string rel;   // relative to the root, as shown in results ("." for the root)
  bool exists = false;
};

// Resolves a path argument against the (real) root and checks containment: lexically first
// (`..`), then with every symlink resolved (the deepest existing ancestor for a path that does
// not exist yet). The error texts are upstream's.
core::Result<Target> resolve_in_root(const stdfs::path& root, const std::string& arg) {
  auto refuse = [&arg](const char* what) {
    return core::make_error(core::Errc::permission_denied, std::string(what) + ": " + arg);
  };
  if (arg.find('\0') != std::string::npos) return refuse("Invalid path");
  const stdfs::path given(arg);
  stdfs::path candidate = (given.is_absolute() ? given : root / given).lexically_normal();
  if (!candidate.has_filename() && candidate != candidate.root_path()) {
    candidate = candidate.parent_path();  // "dir/" -> "dir"
  }
  if (!inside(candidate, root)) return refuse("Path escapes project root");

  stdfs::path existing = candidate;
  std::vector<stdfs::path> missing;  // innermost first
  char buf[PATH_MAX];
  for (;;) {
    if (::realpath(existing.c_str(), buf) != nullptr) break;
    const int err = errno;
    struct stat st {};
    if (err != ENOENT || ::lstat(existing.c_str(), &st) == 0) {
      // A dangling symlink (ENOENT but the entry exists), a loop, or a file used as a
      // directory: nothing may be created through it.
      if (err == ENOENT || err == ELOOP) return refuse("Symlink escapes project root");
      return core::make_error(core::Errc::invalid_argument, errno_text(err) + ": " + arg);
    }
    if (!existing.has_relative_path()) {  // "/" always exists; defensive
      return core::make_error(core::Errc::internal, "cannot resolve " + arg);
    }
    missing.push_back(existing.filename());
    existing = existing.parent_path();
  }
  stdfs::path real(buf);
  if (!inside(real, root)) return refuse("Symlink escapes project root");
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) real /= *it;
  Target t;
  t.real = real;
  t.rel = candidate.lexically_relative(root).generic_string();
  t.exists = missing.empty();
  return t;
}

// Writes into any .git directory are refused: git would run hooks and config planted there.
bool in_git_dir(const Target& t, const stdfs::path& root) {
  for (const auto& rel : {stdfs::path(t.rel), t.real.lexically_relative(root)}) {
    for (const auto& part : rel) {
      std::string name = part.string();
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (name == ".git") return true;
    }
  }
  return false;
}

// Reads a whole regular file opened from a checked real path.
core::Result<std::string> read_whole(const Target& t, const std::string& shown,
                                     std::size_t max_bytes) {
  Fd fd(open_real(t.real, O_RDONLY | O_NONBLOCK));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ELOOP) {
      return core::make_error(core::Errc::permission_denied,
                              "Symlink escapes project root: " + shown);
    }
    return core::make_error(core::Errc::invalid_argument, errno_text(err) + ": " + shown);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return core::make_error(
        core::Errc::invalid_argument,
        (S_ISDIR(st.st_mode) ? "Is a directory: " : "Not a regular file: ") + shown);
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    return core::make_error(core::Errc::payload_too_large,
                            "File too large (" + std::to_string(st.st_size) +
                                " bytes; the limit is " + std::to_string(max_bytes) +
                                "): " + shown);
  }
  std::string out;
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return core::make_error(core::Errc::internal, errno_text(errno) + ": " + shown);
    if (n == 0) break;
    out.append(chunk, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      return core::make_error(core::Errc::payload_too_large, "File too large: " + shown);
    }
  }
  return out;
}

std::string temp_suffix() {
  static std::atomic<unsigned> counter{0};
  return ".edgecoder-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + "-" +
         std::to_string(Clock::now().time_since_epoch().count() % 1000000007);
}

// Creates the missing parent directories of `t` and replaces the file atomically (a temporary
// file in the same directory, then rename: a hard link or a symlink swapped in is replaced,
// never written through). Keeps an existing file's mode (and owner, as root).
core::Result<void> write_whole(const stdfs::path& root, const Target& t, std::string_view content,
                               const std::string& shown) {
  // The parents that do not exist yet, made one by one below the real deepest ancestor (mkdir
  // never follows a final symlink).
  const stdfs::path parent = t.real.parent_path();
  if (!inside(parent, root)) {
    return core::make_error(core::Errc::permission_denied, "Path escapes project root: " + shown);
  }
  std::vector<stdfs::path> to_make;
  for (stdfs::path p = parent; p != root && inside(p, root); p = p.parent_path()) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return core::make_error(core::Errc::invalid_argument,
                                "Not a directory: " + p.lexically_relative(root).string());
      }
      break;
    }
    to_make.push_back(p);
  }
  for (auto it = to_make.rbegin(); it != to_make.rend(); ++it) {
    if (::mkdir(it->c_str(), 0777) != 0 && errno != EEXIST) {
      return core::make_error(core::Errc::internal, "cannot create directory " +
                                                        it->lexically_relative(root).string() +
                                                        ": " + errno_text(errno));
    }
  }
  Fd dir(open_real(parent, O_RDONLY | O_DIRECTORY));
  if (!dir.valid()) {
    if (errno == ELOOP) {
      return core::make_error(core::Errc::permission_denied,
                              "Symlink escapes project root: " + shown);
    }
    return core::make_error(core::Errc::internal, errno_text(errno) + ": " + shown);
  }
  const std::string name = t.real.filename().string();
  struct stat old {};
  const bool existed = ::fstatat(dir.get(), name.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0;
  if (existed && S_ISDIR(old.st_mode)) {
    return core::make_error(core::Errc::invalid_argument, "Is a directory: " + shown);
  }
  if (existed && !S_ISREG(old.st_mode)) {
    return core::make_error(core::Errc::permission_denied,
                            S_ISLNK(old.st_mode) ? "Symlink escapes project root: " + shown
                                                 : "Not a regular file: " + shown);
  }
  const std::string tmp = "." + name + temp_suffix();
  Fd out(
      ::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
  if (!out.valid()) return core::make_error(core::Errc::internal, errno_text(errno) + ": " + shown);
  auto discard = [&](int err) {
    ::unlinkat(dir.get(), tmp.c_str(), 0);
    return core::make_error(core::Errc::internal, errno_text(err) + ": " + shown);
  };
  for (std::size_t done = 0; done < content.size();) {
    const ssize_t n = ::write(out.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return discard(errno);
    done += static_cast<std::size_t>(n);
  }
  if (existed) {
    ::fchmod(out.get(), old.st_mode & 07777);
    if (::geteuid() == 0) (void)::fchown(out.get(), old.st_uid, old.st_gid);
  }
  if (::close(out.release()) != 0) return discard(errno);
  if (::renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0) return discard(errno);
  return {};
}

// --- child processes (grep, git) ----------------------------------------------------------------

struct CommandResult {
  std::string out;
  std::string err;
  int exit_code = -1;  // -1 when killed by a signal or never started
  bool timed_out = false;
  bool out_truncated = false;  // more than kMaxCommandOutputBytes on stdout
  bool line_capped = false;    // stopped after more than `max_lines` lines
  std::string spawn_error;
};

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream in(path != nullptr && *path != '\0' ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(in, dir, ':');) {
    if (dir.empty() || dir.front() != '/') continue;
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// PATH, HOME and LANG only (no secret of the server's reaches git, grep or what git starts),
// plus what keeps git from prompting or leaving the project.
std::vector<std::string> command_env(const stdfs::path& root) {
  const char* path = std::getenv("PATH");
  const char* home = std::getenv("HOME");
  std::vector<std::string> env = {
      std::string("PATH=") +
          (path != nullptr && *path != '\0' ? path : "/usr/local/bin:/usr/bin:/bin"),
      "LANG=C.UTF-8", "GIT_TERMINAL_PROMPT=0",
      // A project that is not a repository itself must not pick up one above it.
      "GIT_CEILING_DIRECTORIES=" + root.parent_path().string()};
  if (home != nullptr && home[0] == '/') env.push_back(std::string("HOME=") + home);
  return env;
}

// Runs argv (no shell) in `cwd` in a session of its own (no controlling terminal, so ssh cannot
// prompt either), with stdin from /dev/null. On the deadline, on more than `max_lines` lines of
// stdout (0 = no limit), and after it ends, the whole process group is killed.
CommandResult run_command(const std::vector<std::string>& argv, const stdfs::path& cwd,
                          std::chrono::milliseconds timeout, std::size_t max_lines = 0) {
  CommandResult r;
  const std::string program = find_program(argv.at(0));
  if (program.empty()) {
    r.spawn_error = argv[0] + " not found in PATH";
    return r;
  }
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    r.spawn_error = "pipe: " + errno_text(errno);
    return r;
  }
  Fd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    r.spawn_error = "pipe: " + errno_text(errno);
    return r;
  }
  Fd err_read(err_pipe[0]), err_write(err_pipe[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), 2);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const auto env_strings = command_env(cwd);
  std::vector<char*> cenv;
  for (const auto& e : env_strings) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  pid_t pid = -1;
  const int spawn_err =
      ::posix_spawn(&pid, program.c_str(), &actions, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  out_write.reset();
  err_write.reset();
  if (spawn_err != 0) {
    r.spawn_error = "cannot run " + program + ": " + errno_text(spawn_err);
    return r;
  }

  const auto deadline = Clock::now() + timeout;
  std::size_t lines = 0;
  bool out_open = true, err_open = true;
  bool stop = false;
  char buf[65536];
  while ((out_open || err_open) && !stop) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      r.timed_out = true;
      break;
    }
    pollfd fds[2] = {{out_open ? out_read.get() : -1, POLLIN, 0},
                     {err_open ? err_read.get() : -1, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(std::min<long long>(left, 1000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2 && !stop; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        (i == 0 ? out_open : err_open) = false;
        continue;
      }
      std::string& dst = i == 0 ? r.out : r.err;
      const std::size_t room = ProjectTools::kMaxCommandOutputBytes -
                               std::min(dst.size(), ProjectTools::kMaxCommandOutputBytes);
      dst.append(buf, std::min(room, static_cast<std::size_t>(got)));
      if (i == 0 && static_cast<std::size_t>(got) > room) r.out_truncated = true;
      if (i == 0 && max_lines > 0) {
        lines += static_cast<std::size_t>(
            std::count(buf, buf + std::min(room, static_cast<std::size_t>(got)), '\n'));
        if (lines > max_lines) {
          r.line_capped = true;
          stop = true;
        }
      }
    }
  }
  ::kill(-pid, SIGKILL);  // the session's group: everything it started that is still there
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

std::filesystem::path tools_real_root(const std::filesystem::path& root) {
  std::error_code ec;
  auto real = std::filesystem::canonical(root, ec);
  return ec ? root.lexically_normal() : real;
}

}  // namespace tools_detail

bool is_read_tool(std::string_view tool) {
  const auto& read = tools_detail::kReadTools;
  return std::find(read.begin(), read.end(), tool) != read.end();
}

std::vector<std::string> tool_names() {
  std::vector<std::string> out;
  for (auto t : tools_detail::kReadTools) out.emplace_back(t);
  for (auto t : tools_detail::kWriteTools) out.emplace_back(t);
  return out;
}

core::Result<std::filesystem::path> resolve_project_root(
    const std::vector<std::filesystem::path>& allowed, std::string_view requested) {
  const std::string req(requested);
  if (req.empty() || req.front() != '/' || req.find('\0') != std::string::npos) {
    return core::make_error(core::Errc::invalid_argument,
                            "projectRoot must be an absolute path, got '" + req + "'");
  }
  std::error_code ec;
  const std::filesystem::path real = std::filesystem::canonical(req, ec);
  if (ec || !std::filesystem::is_directory(real, ec)) {
    return core::make_error(core::Errc::invalid_argument,
                            "projectRoot is not an existing directory: " + req);
  }
  for (const auto& a : allowed) {
    std::error_code aec;
    const std::filesystem::path allowed_real = std::filesystem::canonical(a, aec);
    if (aec) continue;
    if (tools_detail::inside(real, allowed_real)) return real;
  }
  return core::make_error(core::Errc::permission_denied,
                          "projectRoot is outside the allowed project directories: " + req);
}

ProjectTools::ProjectTools(std::filesystem::path root, const sandbox::Sandbox* sandbox)
    : root_(tools_detail::tools_real_root(root)), sandbox_(sandbox) {}

ToolResult ProjectTools::run(std::string_view tool, const nlohmann::json& args) const {
  ToolResult r;
  try {
    static const nlohmann::json kEmpty = nlohmann::json::object();
    r = dispatch(tool, args.is_object() ? args : kEmpty);
  } catch (const std::exception& e) {
    r = tools_detail::fail(e.what());
  }
  if (r.result) r.result = tools_detail::valid_utf8(*r.result);
  if (r.error) r.error = tools_detail::valid_utf8(*r.error);
  if (!r.result && !r.error) r.result = "(no output)";
  return r;
}

namespace tools_detail {

// The tools themselves; `root` is real.
class ToolRunner {
 public:
  ToolRunner(const stdfs::path& root, const sandbox::Sandbox* sandbox)
      : root_(root), sandbox_(sandbox) {}

  ToolResult read_file(const json& args) const {
    const std::string path = str_arg(args, "path");
    if (path.empty()) return fail("path is required");
    auto t = resolve_in_root(root_, path);
    if (!t) return fail(t.error().detail);
    if (!t->exists) return fail("File not found: " + path);
    Fd fd(open_real(t->real, O_RDONLY | O_NONBLOCK));
    if (!fd.valid()) {
      return fail(errno == ELOOP ? "Symlink escapes project root: " + path
                                 : errno_text(errno) + ": " + path);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return fail(errno_text(errno) + ": " + path);
    if (S_ISDIR(st.st_mode)) return fail("Is a directory: " + path);
    if (!S_ISREG(st.st_mode)) return fail("Not a regular file: " + path);
    const std::int64_t offset = std::max<std::int64_t>(1, int_arg(args, "offset", 1));
    const std::int64_t limit = int_arg(args, "limit", 0);  // <= 0: to the end

    // Streams the file: lines before `offset` are skipped without being kept.
    std::string out;
    bool truncated = false;
    bool done = false;
    std::int64_t line_no = 1;
    std::int64_t shown = 0;
    std::string pending;  // the current line, when it is shown
    auto emit = [&](std::string_view line) {
      char number[32];
      std::snprintf(number, sizeof number, "%6lld  ", static_cast<long long>(line_no));
      std::string piece = (shown == 0 ? "" : "\n") + std::string(number);
      piece.append(line);
      if (out.size() + piece.size() > ProjectTools::kMaxReadBytes) {
        out.append(piece, 0,
                   ProjectTools::kMaxReadBytes - std::min(out.size(), ProjectTools::kMaxReadBytes));
        truncated = true;
        done = true;
        return;
      }
      out += piece;
      ++shown;
      if (limit > 0 && shown >= limit) done = true;
    };
    auto showing = [&] { return line_no >= offset; };
    char buf[65536];
    while (!done) {
      const ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(errno_text(errno) + ": " + path);
      if (n == 0) {
        // As JavaScript's split("\n"): the text after the last newline is a line, even empty.
        if (showing()) emit(pending);
        break;
      }
      std::string_view chunk(buf, static_cast<std::size_t>(n));
      while (!done && !chunk.empty()) {
        const auto nl = chunk.find('\n');
        const std::string_view part = chunk.substr(0, nl);
        if (showing() && pending.size() <= ProjectTools::kMaxReadBytes) pending.append(part);
        if (nl == std::string_view::npos) break;
        if (showing()) emit(pending);
        pending.clear();
        ++line_no;
        chunk.remove_prefix(nl + 1);
      }
    }
    if (truncated) {
      out += "\n... (output truncated at " + std::to_string(ProjectTools::kMaxReadBytes) +
             " bytes; read further with offset and limit)";
    }
    return ok(std::move(out));
  }

  ToolResult list_directory(const json& args) const {
    std::string path = str_arg(args, "path");
    if (path.empty()) path = ".";
    auto t = resolve_in_root(root_, path);
    if (!t) return fail(t.error().detail);
    if (!t->exists) return fail("Directory not found: " + path);
    Fd fd(open_real(t->real, O_RDONLY | O_DIRECTORY));
    if (!fd.valid()) {
      const int err = errno;
      if (err == ENOTDIR) return fail("Not a directory: " + path);
      if (err == ELOOP) return fail("Symlink escapes project root: " + path);
      return fail(errno_text(err) + ": " + path);
    }
    DIR* dir = ::fdopendir(fd.get());
    if (dir == nullptr) return fail(errno_text(errno) + ": " + path);
    fd.release();
    struct Entry {
      std::string name;
      bool is_dir;
      std::uint64_t size;
    };
    std::vector<Entry> entries;
    while (dirent* e = ::readdir(dir)) {
      const std::string name = e->d_name;
      if (name.empty() || name.front() == '.') continue;
      struct stat st {};
      if (::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      entries.push_back({name, S_ISDIR(st.st_mode), static_cast<std::uint64_t>(st.st_size)});
    }
    ::closedir(dir);
    if (entries.empty()) return ok("(empty directory)");
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.name < b.name; });
    std::string out;
    const std::size_t n = std::min(entries.size(), ProjectTools::kMaxListEntries);
    for (std::size_t i = 0; i < n; ++i) {
      if (i > 0) out += '\n';
      const Entry& e = entries[i];
      out += e.is_dir ? "dir   " + e.name + "/"
                      : "file  " + e.name + "  (" + std::to_string(e.size) + " bytes)";
    }
    if (entries.size() > n) {
      out += "\n... (limited to " + std::to_string(ProjectTools::kMaxListEntries) + " of " +
             std::to_string(entries.size()) + " entries)";
    }
    return ok(std::move(out));
  }

  ToolResult search_files(const json& args) const {
    const std::string pattern = str_arg(args, "pattern");
    if (pattern.empty()) return fail("pattern is required");
    std::string path = str_arg(args, "path");
    if (path.empty()) path = ".";
    auto t = resolve_in_root(root_, path);
    if (!t) return fail(t.error().detail);
    if (!t->exists) return fail("Path not found: " + path);
    std::vector<std::string> argv = {"grep", "-rn", "-E", "-e", pattern};
    const std::string include = str_arg(args, "include");
    if (!include.empty()) argv.push_back("--include=" + include);
    argv.insert(argv.end(), {"--", t->real.string()});
    const auto r = run_command(argv, root_, kLocalTimeout, ProjectTools::kMaxSearchLines);
    if (!r.spawn_error.empty()) return fail(r.spawn_error);
    // Paths relative to the root, as upstream shows them.
    const std::string prefix = root_.string() + "/";
    std::vector<std::string> lines;
    std::istringstream in(r.out);
    for (std::string line;
         std::getline(in, line) && lines.size() < ProjectTools::kMaxSearchLines;) {
      if (line.rfind(prefix, 0) == 0) line.erase(0, prefix.size());
      lines.push_back(std::move(line));
    }
    if (lines.empty()) {
      if (r.timed_out) return fail("search timed out after 10 s");
      std::string text = "No matches found.";
      const std::string err = trim_end(r.err);
      if (!err.empty()) text += "\n" + err;
      return ok(text);
    }
    std::string out;
    for (std::size_t i = 0; i < lines.size(); ++i) out += (i > 0 ? "\n" : "") + lines[i];
    if (r.line_capped) {
      out += "\n... (limited to " + std::to_string(ProjectTools::kMaxSearchLines) + " results)";
    } else if (r.timed_out) {
      out += "\n... (search timed out after 10 s)";
    }
    return ok(std::move(out));
  }

  ToolResult write_file(const json& args) const {
    const std::string path = str_arg(args, "path");
    if (path.empty()) return fail("path is required");
    const auto content = args.find("content");
    if (content == args.end() || !content->is_string()) return fail("content is required");
    auto t = resolve_in_root(root_, path);
    if (!t) return fail(t.error().detail);
    if (in_git_dir(*t, root_)) return fail("Writing inside .git is not allowed: " + path);
    const std::string& text = content->get_ref<const std::string&>();
    if (auto w = write_whole(root_, *t, text, path); !w) return fail(w.error().detail);
    return ok("Wrote " + std::to_string(text.size()) + " bytes to " + t->rel);
  }

  ToolResult edit_file(const json& args) const {
    const std::string path = str_arg(args, "path");
    if (path.empty()) return fail("path is required");
    const std::string old_string = str_arg(args, "old_string");
    const std::string new_string = str_arg(args, "new_string");
    if (old_string.empty()) return fail("old_string must not be empty");
    if (const auto it = args.find("new_string"); it == args.end() || !it->is_string()) {
      return fail("new_string is required");
    }
    auto t = resolve_in_root(root_, path);
    if (!t) return fail(t.error().detail);
    if (in_git_dir(*t, root_)) return fail("Writing inside .git is not allowed: " + path);
    if (!t->exists) return fail("File not found: " + path);
    auto text = read_whole(*t, path, kMaxEditBytes);
    if (!text) return fail(text.error().detail);
    // Overlapping occurrences count ("aa" occurs twice in "aaa").
    const auto first = text->find(old_string);
    if (first == std::string::npos) return fail("old_string not found in file");
    if (text->find(old_string, first + 1) != std::string::npos) {
      return fail(
          "old_string matches multiple locations in the file. Provide a more specific string.");
    }
    std::string updated =
        text->substr(0, first) + new_string + text->substr(first + old_string.size());
    if (auto w = write_whole(root_, *t, updated, path); !w) return fail(w.error().detail);
    return ok("Edited " + t->rel + " \xE2\x80\x94 replaced " + std::to_string(old_string.size()) +
              " chars");
  }

  ToolResult run_shell(const json& args) const {
    const std::string command = str_arg(args, "command");
    if (command.empty()) return fail("command is required");
    if (sandbox_ == nullptr) return fail("shell tool disabled: no sandbox");
    std::int64_t timeout_ms = int_arg(args, "timeout", ProjectTools::kDefaultShellTimeoutMs);
    if (timeout_ms <= 0) timeout_ms = ProjectTools::kDefaultShellTimeoutMs;
    timeout_ms = std::min<std::int64_t>(timeout_ms, ProjectTools::kMaxShellTimeoutMs);
    sandbox::RunRequest request;
    request.language = sandbox::Language::shell;
    request.code = command;
    request.require_isolation = false;  // the developer's own command on their own machine
    request.project_dir = root_;
    request.wall_timeout = std::chrono::milliseconds(timeout_ms);
    auto run = sandbox_->run(request);
    if (!run) return fail(run.error().detail);
    ShellOutput shell;
    shell.stdout_text = trim_end(valid_utf8(run->stdout_text));
    shell.stderr_text = trim_end(valid_utf8(run->stderr_text));
    // Upstream: 137 (SIGKILL) on timeout, 1 when there is no exit code.
    shell.exit_code = run->timed_out ? 137 : (run->exit_code < 0 ? 1 : run->exit_code);
    if (!run->error.empty()) {
      shell.stderr_text += (shell.stderr_text.empty() ? "" : "\n") + std::string("[sandbox] ") +
                           valid_utf8(run->error);
    }
    ToolResult r;
    r.result = json{{"stdout", shell.stdout_text},
                    {"stderr", shell.stderr_text},
                    {"exit_code", shell.exit_code}}
                   .dump(-1, ' ', false, json::error_handler_t::replace);
    r.shell = std::move(shell);
    return r;
  }

  // --- git ---

  CommandResult git(std::vector<std::string> args,
                    std::chrono::milliseconds timeout = kLocalTimeout) const {
    std::vector<std::string> argv = {
        "git", "--no-pager",           "-c", "core.hooksPath=/dev/null",
        "-c",  "core.fsmonitor=false", "-c", "protocol.ext.allow=never"};
    argv.insert(argv.end(), std::make_move_iterator(args.begin()),
                std::make_move_iterator(args.end()));
    return run_command(argv, root_, timeout);
  }

  static ToolResult git_text(const CommandResult& r, const std::string& what,
                             const std::string& empty_text,
                             std::chrono::milliseconds timeout = kLocalTimeout) {
    if (!r.spawn_error.empty()) return fail(r.spawn_error);
    if (r.timed_out) {
      return fail("git " + what + " timed out after " + std::to_string(timeout.count() / 1000) +
                  " s");
    }
    if (r.exit_code != 0) {
      std::string msg = trim_end(r.err);
      if (msg.empty()) msg = trim_end(r.out);
      if (msg.empty()) msg = "git " + what + " failed (exit " + std::to_string(r.exit_code) + ")";
      return fail(msg);
    }
    std::string text = trim_end(r.out);
    if (text.empty()) return ok(empty_text);
    if (r.out_truncated) {
      text += "\n... (output truncated at " + std::to_string(ProjectTools::kMaxCommandOutputBytes) +
              " bytes)";
    }
    return ok(std::move(text));
  }

  ToolResult git_status(const json&) const {
    return git_text(git({"status", "--porcelain"}), "status", "(clean working tree)");
  }

  ToolResult git_diff(const json& args) const {
    const std::string ref = str_arg(args, "ref");
    const std::string path = str_arg(args, "path");
    if (auto bad = option_like("ref", ref)) return fail(*bad);
    if (auto bad = option_like("path", path)) return fail(*bad);
    std::vector<std::string> a = {"diff", "--no-ext-diff", "--no-textconv"};
    if (!ref.empty()) a.push_back(ref);
    a.push_back("--");
    if (!path.empty()) a.push_back(path);
    return git_text(git(std::move(a)), "diff", "(no diff)");
  }

  ToolResult git_log(const json& args) const {
    const std::int64_t count = std::clamp<std::int64_t>(int_arg(args, "count", 10), 1, 1000);
    const std::string ref = str_arg(args, "ref");
    if (auto bad = option_like("ref", ref)) return fail(*bad);
    std::vector<std::string> a = {"log", "--oneline", "--no-show-signature", "-n",
                                  std::to_string(count)};
    if (!ref.empty()) a.push_back(ref);
    a.push_back("--");
    const auto r = git(std::move(a));
    if (r.exit_code != 0 && r.err.find("does not have any commits yet") != std::string::npos) {
      return ok("(no commits)");
    }
    return git_text(r, "log", "(no commits)");
  }

  ToolResult git_commit(const json& args) const {
    const std::string message = str_arg(args, "message");
    if (trim_end(message).empty()) return fail("commit message is required");
    std::string files_arg = str_arg(args, "files");
    if (const auto it = args.find("files"); it != args.end() && it->is_array()) {
      files_arg.clear();
      for (const auto& f : *it) {
        if (f.is_string()) files_arg += f.get<std::string>() + " ";
      }
    }
    std::vector<std::string> files;
    std::istringstream in(files_arg);
    for (std::string f; in >> f;) {
      if (auto bad = option_like("path", f)) return fail(*bad);
      files.push_back(f);
    }
    if (files.empty()) files.push_back(".");
    std::vector<std::string> add = {"add", "--"};
    add.insert(add.end(), files.begin(), files.end());
    if (auto added = git_text(git(std::move(add)), "add", ""); added.error) return added;
    return git_text(git({"commit", "--no-verify", "-m", message}), "commit", "Committed");
  }

  ToolResult git_branch(const json& args) const {
    const std::string name = str_arg(args, "name");
    if (name.empty()) return git_text(git({"branch"}), "branch", "(no branches)");
    if (auto bad = option_like("branch", name)) return fail(*bad);
    std::vector<std::string> a = {"checkout"};
    if (bool_arg(args, "create")) {
      a.insert(a.end(), {"-b", name});
    } else {
      a.insert(a.end(), {name, "--"});
    }
    return git_text(git(std::move(a)), "checkout", "Switched to branch '" + name + "'");
  }

  // The remote argument must name a configured remote: never a URL or a path (which would
  // reach other transports and repositories) and never an option.
  std::optional<std::string> check_remote(const std::string& remote) const {
    if (auto bad = option_like("remote", remote)) return bad;
    const auto r = git({"remote"});
    if (!r.spawn_error.empty()) return r.spawn_error;
    if (r.exit_code != 0) return trim_end(r.err);
    std::istringstream in(r.out);
    std::string names;
    for (std::string line; std::getline(in, line);) {
      if (line == remote) return std::nullopt;
      names += (names.empty() ? "" : ", ") + line;
    }
    return "Unknown remote: " + remote +
           " (configured remotes: " + (names.empty() ? "none" : names) + ")";
  }

  ToolResult git_network(const json& args, const std::string& verb) const {
    std::string remote = str_arg(args, "remote");
    if (remote.empty()) remote = "origin";
    const std::string branch = str_arg(args, "branch");
    if (auto bad = check_remote(remote)) return fail(*bad);
    if (auto bad = option_like("branch", branch)) return fail(*bad);
    std::vector<std::string> a = {verb};
    if (verb == "push" && bool_arg(args, "setUpstream")) a.push_back("--set-upstream");
    if (verb == "pull") a.push_back("--no-edit");
    a.push_back(remote);
    if (verb != "fetch" && !branch.empty()) a.push_back(branch);
    const std::string where = remote + (verb != "fetch" && !branch.empty() ? "/" + branch : "");
    const std::string fallback = verb == "fetch"  ? "Fetched from " + where
                                 : verb == "push" ? "Pushed to " + where
                                                  : "Pulled from " + where;
    return git_text(git(std::move(a), kNetworkTimeout), verb, fallback, kNetworkTimeout);
  }

 private:
  const stdfs::path& root_;
  const sandbox::Sandbox* sandbox_;
};

}  // namespace tools_detail

ToolResult ProjectTools::dispatch(std::string_view tool, const nlohmann::json& args) const {
  using tools_detail::fail;
  const tools_detail::ToolRunner t(root_, sandbox_);
  if (tool == "read_file") return t.read_file(args);
  if (tool == "list_directory") return t.list_directory(args);
  if (tool == "search_files") return t.search_files(args);
  if (tool == "write_file") return t.write_file(args);
  if (tool == "edit_file") return t.edit_file(args);
  if (tool == "run_shell") return t.run_shell(args);
  if (tool == "git_status") return t.git_status(args);
  if (tool == "git_diff") return t.git_diff(args);
  if (tool == "git_log") return t.git_log(args);
  if (tool == "git_commit") return t.git_commit(args);
  if (tool == "git_branch") return t.git_branch(args);
  if (tool == "git_fetch") return t.git_network(args, "fetch");
  if (tool == "git_push") return t.git_network(args, "push");
  if (tool == "git_pull") return t.git_network(args, "pull");
  if (tool == "github_list_prs" || tool == "github_list_issues" || tool == "github_create_pr") {
    return fail("GitHub tools are not available in this build");
  }
  return fail("Unknown tool: " + std::string(tool));
}

}  // namespace edgecoder::ide
