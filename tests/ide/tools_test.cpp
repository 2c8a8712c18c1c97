// The IDE agent's tools over a real temporary project: upstream's result texts, path
// containment (`..`, symlinks, sibling directories sharing a prefix, files not created yet under
// a symlinked parent), the allow-list for project roots, grep and git with option-like
// arguments, and run_shell through the real bwrap sandbox.
#include "ide/tools.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "sandbox/sandbox_test_support.h"
#include "support/child_process.h"

namespace edgecoder::ide {
namespace {

namespace stdfs = std::filesystem;
using edgecoder::testing::TempDir;
using json = nlohmann::json;

std::string slurp(const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void put(const stdfs::path& path, const std::string& text) {
  stdfs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// A project at <tmp>/proj with a sibling <tmp>/proj-evil holding a secret.
class Tools : public ::testing::Test {
 protected:
  Tools() {
    root_ = base_.path() / "proj";
    evil_ = base_.path() / "proj-evil";
    stdfs::create_directories(root_);
    put(evil_ / "secret.txt", "TOP-SECRET\n");
  }
  ToolResult run(const std::string& tool, const json& args) const {
    ProjectTools tools(root_, nullptr);
    return tools.run(tool, args);
  }
  std::string result(const std::string& tool, const json& args) const {
    auto r = run(tool, args);
    EXPECT_TRUE(r.result) << tool << " " << args.dump() << ": " << r.error.value_or("");
    EXPECT_FALSE(r.error) << *r.error;
    return r.result.value_or("");
  }
  std::string error(const std::string& tool, const json& args) const {
    auto r = run(tool, args);
    EXPECT_TRUE(r.error) << tool << " " << args.dump() << " succeeded: " << r.result.value_or("");
    EXPECT_FALSE(r.result);
    return r.error.value_or("");
  }

  TempDir base_;
  stdfs::path root_;
  stdfs::path evil_;
};

TEST(ToolNames, ReadToolsNeedNoApprovalOthersDo) {
  for (const char* t : {"read_file", "list_directory", "search_files", "git_status", "git_diff",
                        "git_log", "git_fetch", "github_list_prs", "github_list_issues"}) {
    EXPECT_TRUE(is_read_tool(t)) << t;
  }
  for (const char* t : {"write_file", "edit_file", "run_shell", "git_commit", "git_branch",
                        "git_push", "git_pull", "github_create_pr", "rm_rf", ""}) {
    EXPECT_FALSE(is_read_tool(t)) << t;
  }
  EXPECT_EQ(tool_names().size(), 17u);
}

TEST_F(Tools, ReadFileNumbersLinesAndHonoursOffsetAndLimit) {
  put(root_ / "a.txt", "one\ntwo\nthree\nfour");
  EXPECT_EQ(result("read_file", {{"path", "a.txt"}}),
            "     1  one\n     2  two\n     3  three\n     4  four");
  EXPECT_EQ(result("read_file", {{"path", "a.txt"}, {"offset", 2}, {"limit", 2}}),
            "     2  two\n     3  three");
  EXPECT_EQ(result("read_file", {{"path", (root_ / "a.txt").string()}, {"offset", "4"}}),
            "     4  four");
  EXPECT_EQ(error("read_file", {{"path", "missing.txt"}}), "File not found: missing.txt");
  EXPECT_EQ(error("read_file", {}), "path is required");
  stdfs::create_directory(root_ / "dir");
  EXPECT_EQ(error("read_file", {{"path", "dir"}}), "Is a directory: dir");
}

TEST_F(Tools, ReadFileOutputIsCapped) {
  put(root_ / "big.txt", std::string(3 << 20, 'x') + "\nlast\n");
  const std::string out = result("read_file", {{"path", "big.txt"}});
  EXPECT_LT(out.size(), ProjectTools::kMaxReadBytes + 200);
  EXPECT_TRUE(contains(out, "(output truncated at 1048576 bytes")) << out.substr(out.size() - 100);
  EXPECT_EQ(result("read_file", {{"path", "big.txt"}, {"offset", 2}, {"limit", 1}}),
            "     2  last");
}

TEST_F(Tools, WriteFileCreatesParentsAndEditFileReplacesOnce) {
  EXPECT_EQ(result("write_file", {{"path", "src/deep/new.txt"}, {"content", "alpha beta\n"}}),
            "Wrote 11 bytes to src/deep/new.txt");
  EXPECT_EQ(slurp(root_ / "src/deep/new.txt"), "alpha beta\n");
  // Overwriting keeps the file's mode.
  ::chmod((root_ / "src/deep/new.txt").c_str(), 0750);
  EXPECT_EQ(result("write_file", {{"path", "src/deep/new.txt"}, {"content", "aaa gamma aaa"}}),
            "Wrote 13 bytes to src/deep/new.txt");
  EXPECT_EQ(stdfs::status(root_ / "src/deep/new.txt").permissions() & stdfs::perms::all,
            stdfs::perms(0750));

  EXPECT_EQ(
      error("edit_file", {{"path", "src/deep/new.txt"}, {"old_string", ""}, {"new_string", "x"}}),
      "old_string must not be empty");
  EXPECT_EQ(error("edit_file",
                  {{"path", "src/deep/new.txt"}, {"old_string", "delta"}, {"new_string", "x"}}),
            "old_string not found in file");
  EXPECT_EQ(error("edit_file",
                  {{"path", "src/deep/new.txt"}, {"old_string", "aaa"}, {"new_string", "x"}}),
            "old_string matches multiple locations in the file. Provide a more specific string.");
  EXPECT_EQ(error("edit_file", {{"path", "src/deep/new.txt"}, {"old_string", "gamma"}}),
            "new_string is required");
  // Overlapping occurrences count too.
  put(root_ / "o.txt", "aaa");
  EXPECT_EQ(error("edit_file", {{"path", "o.txt"}, {"old_string", "aa"}, {"new_string", "b"}}),
            "old_string matches multiple locations in the file. Provide a more specific string.");
  EXPECT_EQ(
      result("edit_file",
             {{"path", "src/deep/new.txt"}, {"old_string", "gamma"}, {"new_string", "GAMMA!"}}),
      "Edited src/deep/new.txt \xE2\x80\x94 replaced 5 chars");
  EXPECT_EQ(slurp(root_ / "src/deep/new.txt"), "aaa GAMMA! aaa");
  // No temporary files are left behind.
  int entries = 0;
  for ([[maybe_unused]] const auto& e : stdfs::directory_iterator(root_ / "src/deep")) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST_F(Tools, WritesIntoGitDirectoriesAreRefused) {
  stdfs::create_directories(root_ / ".git" / "hooks");
  EXPECT_TRUE(contains(error("write_file", {{"path", ".git/hooks/pre-commit"}, {"content", "x"}}),
                       "inside .git"));
  EXPECT_TRUE(contains(error("write_file", {{"path", "sub/.git/config"}, {"content", "x"}}),
                       "inside .git"));
  stdfs::create_directory_symlink(".git", root_ / "innocent");
  EXPECT_TRUE(contains(error("write_file", {{"path", "innocent/config"}, {"content", "x"}}),
                       "inside .git"));
  EXPECT_FALSE(stdfs::exists(root_ / ".git" / "config"));
}

TEST_F(Tools, DotDotEscapesAreRefused) {
  for (const std::string& p : {std::string("../proj-evil/secret.txt"), std::string(".."),
                               std::string("sub/../../proj-evil/secret.txt"),
                               (evil_ / "secret.txt").string(), std::string("/etc/passwd")}) {
    EXPECT_EQ(error("read_file", {{"path", p}}), "Path escapes project root: " + p);
    EXPECT_EQ(error("write_file", {{"path", p}, {"content", "pwned"}}),
              "Path escapes project root: " + p);
    EXPECT_EQ(error("list_directory", {{"path", p}}), "Path escapes project root: " + p);
    EXPECT_EQ(error("search_files", {{"pattern", "SECRET"}, {"path", p}}),
              "Path escapes project root: " + p);
  }
  EXPECT_EQ(slurp(evil_ / "secret.txt"), "TOP-SECRET\n");
  // `..` that stays inside is fine.
  put(root_ / "a.txt", "x");
  EXPECT_EQ(result("read_file", {{"path", "sub/../a.txt"}}), "     1  x");
}

TEST_F(Tools, SiblingDirectorySharingThePrefixIsNotInside) {
  // /…/proj-evil starts with the string /…/proj but is not inside it.
  const std::string p = (evil_ / "secret.txt").string();
  EXPECT_EQ(error("read_file", {{"path", p}}), "Path escapes project root: " + p);
  stdfs::create_directory_symlink(evil_, root_ / "evil-link");
  EXPECT_EQ(error("read_file", {{"path", "evil-link/secret.txt"}}),
            "Symlink escapes project root: evil-link/secret.txt");
}

TEST_F(Tools, SymlinkEscapesAreRefusedForReadAndWrite) {
  const stdfs::path outside = base_.path() / "outside";
  put(outside / "secret.txt", "OUTSIDE-SECRET");
  stdfs::create_symlink(outside / "secret.txt", root_ / "file-link");
  stdfs::create_directory_symlink(outside, root_ / "dir-link");

  EXPECT_EQ(error("read_file", {{"path", "file-link"}}), "Symlink escapes project root: file-link");
  EXPECT_EQ(error("read_file", {{"path", "dir-link/secret.txt"}}),
            "Symlink escapes project root: dir-link/secret.txt");
  EXPECT_EQ(error("list_directory", {{"path", "dir-link"}}),
            "Symlink escapes project root: dir-link");
  EXPECT_EQ(error("write_file", {{"path", "file-link"}, {"content", "pwned"}}),
            "Symlink escapes project root: file-link");
  // A file that does not exist yet, under a symlinked parent (upstream let this through).
  EXPECT_EQ(error("write_file", {{"path", "dir-link/new.txt"}, {"content", "pwned"}}),
            "Symlink escapes project root: dir-link/new.txt");
  EXPECT_EQ(error("write_file", {{"path", "dir-link/a/b/new.txt"}, {"content", "pwned"}}),
            "Symlink escapes project root: dir-link/a/b/new.txt");
  EXPECT_EQ(
      error("edit_file", {{"path", "file-link"}, {"old_string", "OUTSIDE"}, {"new_string", "x"}}),
      "Symlink escapes project root: file-link");
  // A dangling symlink could be pointed anywhere later: nothing is created through it.
  stdfs::create_symlink(outside / "later.txt", root_ / "dangling");
  EXPECT_EQ(error("write_file", {{"path", "dangling"}, {"content", "pwned"}}),
            "Symlink escapes project root: dangling");
  EXPECT_FALSE(stdfs::exists(outside / "new.txt"));
  EXPECT_FALSE(stdfs::exists(outside / "a"));
  EXPECT_FALSE(stdfs::exists(outside / "later.txt"));
  EXPECT_EQ(slurp(outside / "secret.txt"), "OUTSIDE-SECRET");

  // Symlinks that stay inside the project work.
  put(root_ / "real/inner.txt", "inside");
  stdfs::create_directory_symlink(root_ / "real", root_ / "alias");
  EXPECT_EQ(result("read_file", {{"path", "alias/inner.txt"}}), "     1  inside");
  EXPECT_EQ(result("write_file", {{"path", "alias/made.txt"}, {"content", "ok"}}),
            "Wrote 2 bytes to alias/made.txt");
  EXPECT_EQ(slurp(root_ / "real/made.txt"), "ok");
}

TEST_F(Tools, ARootGivenThroughASymlinkIsResolved) {
  const stdfs::path link = base_.path() / "proj-link";
  stdfs::create_directory_symlink(root_, link);
  put(root_ / "a.txt", "x");
  ProjectTools tools(link, nullptr);
  EXPECT_EQ(tools.root(), stdfs::canonical(root_));
  auto r = tools.run("read_file", {{"path", "a.txt"}});
  EXPECT_EQ(r.result.value_or(r.error.value_or("")), "     1  x");
}

TEST(ProjectRoot, MustLieInsideAnAllowedDirectory) {
  TempDir base;
  const stdfs::path allowed = base.path() / "work";
  stdfs::create_directories(allowed / "app" / "src");
  stdfs::create_directories(base.path() / "work-evil");
  stdfs::create_directories(base.path() / "other");
  stdfs::create_directory_symlink(base.path() / "other", allowed / "escape");

  auto sub = resolve_project_root({allowed}, (allowed / "app").string());
  ASSERT_TRUE(sub) << sub.error().detail;
  EXPECT_EQ(*sub, stdfs::canonical(allowed / "app"));
  auto same = resolve_project_root({"/nonexistent-dir", allowed}, allowed.string());
  ASSERT_TRUE(same) << same.error().detail;
  auto dotted = resolve_project_root({allowed}, (allowed / "app/src/..").string());
  ASSERT_TRUE(dotted) << dotted.error().detail;
  EXPECT_EQ(*dotted, stdfs::canonical(allowed / "app"));

  for (const stdfs::path& bad : {base.path() / "other", base.path() / "work-evil",
                                 allowed / "escape", allowed / "app/../..", stdfs::path("/")}) {
    auto r = resolve_project_root({allowed}, bad.string());
    ASSERT_FALSE(r) << bad << " was accepted";
    EXPECT_EQ(r.error().code, core::Errc::permission_denied) << bad;
  }
  EXPECT_EQ(resolve_project_root({allowed}, "work/app").error().code, core::Errc::invalid_argument);
  EXPECT_EQ(resolve_project_root({allowed}, (allowed / "missing").string()).error().code,
            core::Errc::invalid_argument);
  EXPECT_FALSE(resolve_project_root({}, allowed.string()));
}

TEST_F(Tools, ListDirectoryShowsOneLevel) {
  put(root_ / "b.txt", "12345");
  put(root_ / "sub/inner.txt", "x");
  put(root_ / ".hidden", "h");
  EXPECT_EQ(result("list_directory", {{"path", "."}}), "file  b.txt  (5 bytes)\ndir   sub/");
  EXPECT_EQ(result("list_directory", {}), "file  b.txt  (5 bytes)\ndir   sub/");
  EXPECT_EQ(result("list_directory", {{"path", "sub"}, {"recursive", true}}),
            "file  inner.txt  (1 bytes)");
  stdfs::create_directory(root_ / "empty");
  EXPECT_EQ(result("list_directory", {{"path", "empty"}}), "(empty directory)");
  EXPECT_EQ(error("list_directory", {{"path", "b.txt"}}), "Not a directory: b.txt");
}

TEST_F(Tools, SearchFilesTakesPatternsStartingWithADashAsPatterns) {
  put(root_ / "a.sh", "echo hi\nrm -rf build\n");
  put(root_ / "src/b.py", "x = 1  # -rf\n");
  put(root_ / "src/c.txt", "nothing\n");
  // grep -r walks directories in on-disk order.
  const std::string both = result("search_files", {{"pattern", "-rf"}});
  EXPECT_TRUE(both == "a.sh:2:rm -rf build\nsrc/b.py:1:x = 1  # -rf" ||
              both == "src/b.py:1:x = 1  # -rf\na.sh:2:rm -rf build")
      << both;
  EXPECT_EQ(result("search_files", {{"pattern", "-rf"}, {"include", "*.py"}}),
            "src/b.py:1:x = 1  # -rf");
  EXPECT_EQ(result("search_files", {{"pattern", "--version"}}), "No matches found.");
  EXPECT_EQ(result("search_files", {{"pattern", "x|rm"}, {"path", "src"}}),
            "src/b.py:1:x = 1  # -rf");
  EXPECT_EQ(error("search_files", {}), "pattern is required");
}

TEST_F(Tools, SearchFilesStopsAfterFiftyLines) {
  std::string many;
  for (int i = 0; i < 500; ++i) many += "match " + std::to_string(i) + "\n";
  put(root_ / "many.txt", many);
  const std::string out = result("search_files", {{"pattern", "match"}});
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 50);
  EXPECT_TRUE(out.ends_with("\n... (limited to 50 results)")) << out;
  EXPECT_TRUE(out.starts_with("many.txt:1:match 0\n")) << out;
}

// A git repository in the project with a committer identity of its own.
void git_setup(const stdfs::path& root) {
  const std::string q = "'" + root.string() + "'";
  ASSERT_EQ(sandbox::testing::shell("git init -q " + q + " && git -C " + q +
                                    " config user.email t@example.com && git -C " + q +
                                    " config user.name Tester && git -C " + q +
                                    " config commit.gpgsign false"),
            0);
}

TEST_F(Tools, GitToolsOnARealRepository) {
  git_setup(root_);
  EXPECT_EQ(result("git_log", {}), "(no commits)");
  EXPECT_EQ(result("git_status", {}), "(clean working tree)");
  put(root_ / "a.txt", "one\n");
  EXPECT_EQ(result("git_status", {}), "?? a.txt");
  EXPECT_EQ(error("git_commit", {{"message", ""}}), "commit message is required");
  EXPECT_TRUE(contains(result("git_commit", {{"message", "first commit"}}), "first commit"));
  EXPECT_EQ(result("git_status", {}), "(clean working tree)");
  EXPECT_EQ(result("git_diff", {}), "(no diff)");
  put(root_ / "a.txt", "one\ntwo\n");
  EXPECT_EQ(result("git_status", {}), " M a.txt");
  const std::string diff = result("git_diff", {{"path", "a.txt"}});
  EXPECT_TRUE(contains(diff, "+two")) << diff;
  EXPECT_TRUE(contains(result("git_diff", {{"ref", "HEAD"}}), "+two"));
  EXPECT_TRUE(
      contains(result("git_commit", {{"message", "second"}, {"files", "a.txt"}}), "second"));
  const std::string log = result("git_log", {{"count", 5}});
  EXPECT_TRUE(contains(log, "second")) << log;
  EXPECT_TRUE(contains(log, "first commit")) << log;
  const std::string last = result("git_log", {{"count", 1}});
  EXPECT_EQ(std::count(last.begin(), last.end(), '\n'), 0) << last;
  EXPECT_TRUE(contains(last, "second")) << last;
  EXPECT_EQ(result("git_branch", {{"name", "feature"}, {"create", true}}),
            "Switched to branch 'feature'");
  EXPECT_TRUE(contains(result("git_branch", {}), "* feature"));
}

TEST_F(Tools, OptionLikeGitArgumentsAreRefused) {
  git_setup(root_);
  put(root_ / "a.txt", "x\n");
  result("git_commit", {{"message", "c"}});
  const stdfs::path written = base_.path() / "written-by-git";
  EXPECT_TRUE(contains(error("git_diff", {{"ref", "--output=" + written.string()}}),
                       "must not start with '-'"));
  EXPECT_TRUE(contains(error("git_diff", {{"path", "--output=" + written.string()}}),
                       "must not start with '-'"));
  EXPECT_TRUE(contains(error("git_log", {{"ref", "--output=" + written.string()}}),
                       "must not start with '-'"));
  EXPECT_FALSE(stdfs::exists(written));
  const stdfs::path ran = base_.path() / "ran-by-git";
  EXPECT_TRUE(contains(error("git_fetch", {{"remote", "--upload-pack=touch " + ran.string()}}),
                       "must not start with '-'"));
  EXPECT_TRUE(contains(error("git_branch", {{"name", "-D"}}), "must not start with '-'"));
  EXPECT_TRUE(contains(error("git_commit", {{"message", "m"}, {"files", "a.txt --amend"}}),
                       "must not start with '-'"));
  // Remotes must be configured remote names, never URLs or paths.
  EXPECT_TRUE(contains(error("git_fetch", {{"remote", "ext::sh -c touch% " + ran.string()}}),
                       "Unknown remote"));
  EXPECT_TRUE(contains(error("git_pull", {{"remote", evil_.string()}}), "Unknown remote"));
  EXPECT_FALSE(stdfs::exists(ran));
}

TEST_F(Tools, GitHooksAreNotRun) {
  git_setup(root_);
  const stdfs::path ran = base_.path() / "hook-ran";
  put(root_ / ".git/hooks/pre-commit", "#!/bin/sh\ntouch '" + ran.string() + "'\n");
  ::chmod((root_ / ".git/hooks/pre-commit").c_str(), 0755);
  put(root_ / "a.txt", "x\n");
  EXPECT_TRUE(contains(result("git_commit", {{"message", "c"}}), "c"));
  EXPECT_FALSE(stdfs::exists(ran));
}

TEST_F(Tools, GitHubToolsAndUnknownToolsSayWhy) {
  EXPECT_EQ(error("github_list_prs", {}), "GitHub tools are not available in this build");
  EXPECT_EQ(error("github_create_pr", {{"title", "t"}}),
            "GitHub tools are not available in this build");
  EXPECT_EQ(error("format_disk", {}), "Unknown tool: format_disk");
  EXPECT_EQ(error("run_shell", {{"command", "echo hi"}}), "shell tool disabled: no sandbox");
  // Arguments that are not an object are treated as none.
  EXPECT_EQ(error("read_file", json::array()), "path is required");
}

TEST_F(Tools, InvalidUtf8IsReplaced) {
  put(root_ / "bin.txt", std::string("ok \xff\xfe end"));
  const std::string out = result("read_file", {{"path", "bin.txt"}});
  EXPECT_EQ(out, "     1  ok \xEF\xBF\xBD\xEF\xBF\xBD end");
  EXPECT_NO_THROW((void)json(out).dump());
}

// run_shell through the real bwrap sandbox (the CI runs as root, where it works).
class Shell : public Tools {
 protected:
  void SetUp() override {
    options_ = sandbox::testing::test_options(sandbox::Mode::bwrap);
    if (::geteuid() == 0) {
      // bwrap runs the command as the sandbox uid: it must reach and write the project.
      ::chmod(base_.path().c_str(), 0755);
      ASSERT_EQ(::chown(root_.c_str(), options_.uid, options_.gid), 0);
    }
    const auto report = sandbox::probe(options_);
    if (!report.ready) GTEST_SKIP() << "bwrap cannot run here: " << report.problem;
    auto sb = sandbox::make_sandbox(options_, report);
    ASSERT_TRUE(sb) << sb.error().detail;
    sandbox_ = std::move(*sb);
  }
  sandbox::Options options_;
  std::unique_ptr<sandbox::Sandbox> sandbox_;
};

TEST_F(Shell, RunsInTheProjectThroughTheSandbox) {
  put(root_ / "in.txt", "from host\n");
  if (::geteuid() == 0) ::chmod((root_ / "in.txt").c_str(), 0644);
  ProjectTools tools(root_, sandbox_.get());
  auto r = tools.run(
      "run_shell",
      {{"command", "cat in.txt; echo made > out.txt; ls /home 2>&1; echo oops >&2; exit 4"}});
  ASSERT_TRUE(r.result) << r.error.value_or("");
  ASSERT_TRUE(r.shell);
  EXPECT_EQ(r.shell->exit_code, 4);
  EXPECT_EQ(r.shell->stdout_text,
            "from host\nls: cannot access '/home': No such file or directory");
  EXPECT_EQ(r.shell->stderr_text, "oops");
  const json parsed = json::parse(*r.result);
  EXPECT_EQ(parsed.at("stdout"), r.shell->stdout_text);
  EXPECT_EQ(parsed.at("stderr"), "oops");
  EXPECT_EQ(parsed.at("exit_code"), 4);
  EXPECT_EQ(slurp(root_ / "out.txt"), "made\n");
  // The server's environment does not reach the command.
  ::setenv("EDGECODER_IDE_TEST_SECRET", "leaked-secret", 1);
  auto env = tools.run("run_shell", {{"command", "env"}});
  ::unsetenv("EDGECODER_IDE_TEST_SECRET");
  ASSERT_TRUE(env.shell);
  EXPECT_FALSE(contains(env.shell->stdout_text, "leaked-secret"));
}

TEST_F(Shell, TimeoutKillsTheCommandWith137) {
  ProjectTools tools(root_, sandbox_.get());
  auto r = tools.run("run_shell", {{"command", "echo started; sleep 30"}, {"timeout", 800}});
  ASSERT_TRUE(r.shell) << r.error.value_or("");
  EXPECT_EQ(r.shell->exit_code, 137);
  EXPECT_EQ(r.shell->stdout_text, "started");
  EXPECT_TRUE(contains(r.shell->stderr_text, "timed out")) << r.shell->stderr_text;
  EXPECT_EQ(error("run_shell", {}), "command is required");
}

}  // namespace
}  // namespace edgecoder::ide
