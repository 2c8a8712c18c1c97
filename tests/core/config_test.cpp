#include "core/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace edgecoder::core {
namespace {

namespace stdfs = std::filesystem;

// A fresh directory per test, removed afterwards.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (stdfs::temp_directory_path() / "edgecoder-config-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    stdfs::remove_all(dir_, ec);
  }

  stdfs::path write(const std::string& name, const std::string& content) {
    const stdfs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  // Options that never touch the real /etc/edgecoder/edgecoder.env.
  LoadOptions options() const {
    LoadOptions o;
    o.default_env_file = dir_ / "absent-default.env";
    return o;
  }

  Settings load_ok(const LoadOptions& o) {
    auto s = Settings::load(o);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().detail);
    return s ? *s : Settings{};
  }

  stdfs::path dir_;
};

TEST_F(ConfigTest, PrecedenceDefaultEnvFileEnvironmentCommandLine) {
  LoadOptions o = options();
  // default only
  Settings s = load_ok(o);
  EXPECT_EQ(s.get("COORDINATOR_PORT"), "4301");
  EXPECT_EQ(s.source("COORDINATOR_PORT"), Source::default_value);

  // env file beats the default
  o.env_file = write("a.env", "COORDINATOR_PORT=5001\n");
  s = load_ok(o);
  EXPECT_EQ(s.get("COORDINATOR_PORT"), "5001");
  EXPECT_EQ(s.source("COORDINATOR_PORT"), Source::env_file);
  EXPECT_EQ(s.env_file_used(), o.env_file);

  // the environment beats the env file
  o.environment = {{"COORDINATOR_PORT", "5002"}};
  s = load_ok(o);
  EXPECT_EQ(s.get("COORDINATOR_PORT"), "5002");
  EXPECT_EQ(s.source("COORDINATOR_PORT"), Source::environment);

  // the command line beats everything
  o.command_line = {{"COORDINATOR_PORT", "5003"}};
  s = load_ok(o);
  EXPECT_EQ(s.get("COORDINATOR_PORT"), "5003");
  EXPECT_EQ(s.source("COORDINATOR_PORT"), Source::command_line);
  // untouched settings keep their defaults
  EXPECT_EQ(s.get("INFERENCE_PORT"), "4302");
  EXPECT_EQ(s.source("INFERENCE_PORT"), Source::default_value);
}

TEST_F(ConfigTest, DefaultEnvFileReadOnlyWhenPresent) {
  LoadOptions o = options();
  Settings s = load_ok(o);  // absent default file: silently ignored
  EXPECT_FALSE(s.env_file_used().has_value());

  o.default_env_file = write("default.env", "EDGECODER_BIND=0.0.0.0\n");
  s = load_ok(o);
  EXPECT_EQ(s.get("EDGECODER_BIND"), "0.0.0.0");
  EXPECT_EQ(s.source("EDGECODER_BIND"), Source::env_file);
  EXPECT_EQ(s.env_file_used(), o.default_env_file);

  // An explicit --env-file replaces the default one.
  o.env_file = write("explicit.env", "PORTAL_PORT=9000\n");
  s = load_ok(o);
  EXPECT_EQ(s.get("EDGECODER_BIND"), "127.0.0.1");
  EXPECT_EQ(s.get("PORTAL_PORT"), "9000");
}

TEST_F(ConfigTest, ExplicitEnvFileMissingIsAnError) {
  LoadOptions o = options();
  o.env_file = dir_ / "missing.env";
  auto s = Settings::load(o);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, Errc::invalid_argument);
  EXPECT_NE(s.error().detail.find("missing.env"), std::string::npos) << s.error().detail;
}

TEST_F(ConfigTest, EnvFileErrorInLoadNamesFileAndLine) {
  LoadOptions o = options();
  o.env_file = write("bad.env", "A=1\n\nnot a setting\n");
  auto s = Settings::load(o);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().detail.find("bad.env"), std::string::npos) << s.error().detail;
  EXPECT_NE(s.error().detail.find("env file line 3"), std::string::npos) << s.error().detail;
}

TEST_F(ConfigTest, ParseEnvFileSyntax) {
  const std::string text =
      "# a comment\n"
      "\n"
      "   \n"
      "PLAIN=value\n"
      "export EXPORTED=yes\n"
      "SPACED = padded value  \n"
      "SINGLE='lit $HOME \\n # not a comment'\n"
      "DOUBLE=\"a \\\"q\\\" b\\\\c\\nd\"\n"
      "INLINE=abc # trailing comment\n"
      "HASH=abc#def\n"
      "QUOTED_COMMENT=\"x # y\" # real comment\n"
      "EMPTY=\n"
      "EQUALS=a=b=c\n"
      "CRLF=win\r\n"
      "  INDENTED=1\n"
      "exported_lower=1";  // last line without a newline
  auto parsed = parse_env_file(text);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().detail;
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"PLAIN", "value"},
      {"EXPORTED", "yes"},
      {"SPACED", "padded value"},
      {"SINGLE", "lit $HOME \\n # not a comment"},
      {"DOUBLE", "a \"q\" b\\c\nd"},
      {"INLINE", "abc"},
      {"HASH", "abc#def"},
      {"QUOTED_COMMENT", "x # y"},
      {"EMPTY", ""},
      {"EQUALS", "a=b=c"},
      {"CRLF", "win"},
      {"INDENTED", "1"},
      {"exported_lower", "1"},
  };
  EXPECT_EQ(*parsed, expected);
}

TEST_F(ConfigTest, ParseEnvFileBadLinesCarryTheirNumber) {
  struct Case {
    std::string text;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"A=1\nB=2\nno equals sign\n", "env file line 3:"},
      {"# c\nA='unterminated\n", "env file line 2:"},
      {"A=\"unterminated\n", "env file line 1:"},
      {"A=1\n1BAD=x\n", "env file line 2:"},
      {"A=\"x\" trailing\n", "env file line 1:"},
      {"\n\n\n=novalue\n", "env file line 4:"},
  };
  for (const auto& c : cases) {
    auto parsed = parse_env_file(c.text);
    ASSERT_FALSE(parsed.has_value()) << c.text;
    EXPECT_EQ(parsed.error().code, Errc::invalid_argument);
    EXPECT_NE(parsed.error().detail.find(c.needle), std::string::npos)
        << c.text << " -> " << parsed.error().detail;
  }
}

TEST_F(ConfigTest, ParseEnvFileErrorNeverEchoesValue) {
  auto parsed = parse_env_file("MESH_AUTH_TOKEN=\"s3cr3t-value\n");
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().detail.find("s3cr3t-value"), std::string::npos);
}

TEST_F(ConfigTest, SecretFromNameFileTrimsOneNewline) {
  LoadOptions o = options();
  const auto path = write("mesh.token", "file-secret\n\n");
  o.environment = {{"MESH_AUTH_TOKEN_FILE", path.string()}};
  Settings s = load_ok(o);
  // Exactly one trailing newline is removed.
  EXPECT_EQ(s.get("MESH_AUTH_TOKEN"), "file-secret\n");
  EXPECT_EQ(s.source("MESH_AUTH_TOKEN"), Source::secret_file);

  write("mesh.token", "file-secret\r\n");
  s = load_ok(o);
  EXPECT_EQ(s.get("MESH_AUTH_TOKEN"), "file-secret");

  // NAME_FILE may come from the env file as well.
  o.environment.clear();
  o.env_file = write("a.env", "ADMIN_API_TOKEN_FILE=" + path.string() + "\n");
  s = load_ok(o);
  EXPECT_EQ(s.get("ADMIN_API_TOKEN"), "file-secret");
  EXPECT_EQ(s.source("ADMIN_API_TOKEN"), Source::secret_file);
}

TEST_F(ConfigTest, UnreadableNameFileNamesTheSettingNotTheContent) {
  LoadOptions o = options();
  const auto missing = dir_ / "no-such-token";
  o.environment = {{"ADMIN_API_TOKEN_FILE", missing.string()}};
  auto s = Settings::load(o);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().detail.find("ADMIN_API_TOKEN_FILE"), std::string::npos) << s.error().detail;
  EXPECT_NE(s.error().detail.find(missing.string()), std::string::npos) << s.error().detail;

  // A directory cannot be read as a file: the error must not include anything from it.
  const auto secret_dir = dir_ / "dir-token";
  stdfs::create_directory(secret_dir);
  write("dir-token/inner", "do-not-leak");
  o.environment = {{"ADMIN_API_TOKEN_FILE", secret_dir.string()}};
  s = Settings::load(o);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().detail.find("ADMIN_API_TOKEN_FILE"), std::string::npos);
  EXPECT_EQ(s.error().detail.find("do-not-leak"), std::string::npos);

  if (::geteuid() != 0) {  // root reads anything, so permissions cannot be tested as root
    const auto locked = write("locked.token", "top-secret-content");
    ::chmod(locked.c_str(), 0);
    o.environment = {{"ADMIN_API_TOKEN_FILE", locked.string()}};
    s = Settings::load(o);
    ASSERT_FALSE(s.has_value());
    EXPECT_NE(s.error().detail.find("ADMIN_API_TOKEN_FILE"), std::string::npos);
    EXPECT_EQ(s.error().detail.find("top-secret-content"), std::string::npos);
  }
}

TEST_F(ConfigTest, SecretFromCredentialsDirectory) {
  LoadOptions o = options();
  const auto creds = dir_ / "creds";
  stdfs::create_directory(creds);
  write("creds/INFERENCE_AUTH_TOKEN", "cred-secret\n");
  o.environment = {{"CREDENTIALS_DIRECTORY", creds.string()}};
  Settings s = load_ok(o);
  EXPECT_EQ(s.get("INFERENCE_AUTH_TOKEN"), "cred-secret");
  EXPECT_EQ(s.source("INFERENCE_AUTH_TOKEN"), Source::credential);
  // Secrets without a credential file stay unset.
  EXPECT_FALSE(s.has("ADMIN_API_TOKEN"));

  // NAME_FILE is preferred over the credentials directory.
  o.environment.emplace_back("INFERENCE_AUTH_TOKEN_FILE", write("f.token", "from-file").string());
  s = load_ok(o);
  EXPECT_EQ(s.get("INFERENCE_AUTH_TOKEN"), "from-file");
  EXPECT_EQ(s.source("INFERENCE_AUTH_TOKEN"), Source::secret_file);
}

TEST_F(ConfigTest, ExplicitSecretBeatsNameFile) {
  LoadOptions o = options();
  const auto creds = dir_ / "creds";
  stdfs::create_directory(creds);
  write("creds/MESH_AUTH_TOKEN", "from-credential");
  o.environment = {{"MESH_AUTH_TOKEN", "explicit-secret"},
                   {"MESH_AUTH_TOKEN_FILE", write("t", "from-file").string()},
                   {"CREDENTIALS_DIRECTORY", creds.string()}};
  Settings s = load_ok(o);
  EXPECT_EQ(s.get("MESH_AUTH_TOKEN"), "explicit-secret");
  EXPECT_EQ(s.source("MESH_AUTH_TOKEN"), Source::environment);

  // An unreadable NAME_FILE does not matter when NAME itself is set.
  o.environment[1].second = (dir_ / "missing").string();
  s = load_ok(o);
  EXPECT_EQ(s.get("MESH_AUTH_TOKEN"), "explicit-secret");
}

TEST_F(ConfigTest, RedactedHidesEverySecret) {
  LoadOptions o = options();
  o.env_file = write("a.env",
                     "MESH_AUTH_TOKEN=env-file-secret-1\n"
                     "CUSTOM_SETTING=visible\n"
                     "SOME_API_KEY=unknown-secret-2\n");
  o.environment = {{"ADMIN_API_TOKEN", "environment-secret-3"},
                   {"DATABASE_URL", "postgres://u:db-password-4@h/db"},
                   {"PATH", "/usr/bin"},
                   {"FEDERATION_TOKEN_FILE", write("fed", "file-secret-5\n").string()}};
  o.command_line = {{"METRICS_TOKEN", "cli-secret-6"}, {"EXTRA_FLAG", "on"}};
  Settings s = load_ok(o);
  s.set_generated("INFERENCE_AUTH_TOKEN", "generated-secret-7");

  const auto shown = s.redacted();
  std::string all;
  std::map<std::string, std::string> by_name;
  for (const auto& [k, v] : shown) {
    all += k + "=" + v + "\n";
    by_name[k] = v;
  }
  for (const char* secret :
       {"env-file-secret-1", "unknown-secret-2", "environment-secret-3", "db-password-4",
        "file-secret-5", "cli-secret-6", "generated-secret-7"}) {
    EXPECT_EQ(all.find(secret), std::string::npos) << secret << " leaked:\n" << all;
  }
  EXPECT_EQ(by_name["MESH_AUTH_TOKEN"], "<redacted>");
  EXPECT_EQ(by_name["ADMIN_API_TOKEN"], "<redacted>");
  EXPECT_EQ(by_name["DATABASE_URL"], "<redacted>");
  EXPECT_EQ(by_name["FEDERATION_TOKEN"], "<redacted>");
  EXPECT_EQ(by_name["METRICS_TOKEN"], "<redacted>");
  EXPECT_EQ(by_name["INFERENCE_AUTH_TOKEN"], "<redacted>");
  EXPECT_EQ(by_name["PORTAL_SERVICE_TOKEN"], "<unset>");
  EXPECT_EQ(by_name["IDE_PROVIDER_API_KEY"], "<unset>");
  // Every known setting is listed, with non-secret values visible.
  for (const SettingSpec& spec : known_settings()) {
    EXPECT_EQ(by_name.count(std::string(spec.name)), 1U) << spec.name;
  }
  EXPECT_EQ(by_name["COORDINATOR_PORT"], "4301");
  // Unknown names: listed when they came from the env file or command line, not from the
  // process environment.
  EXPECT_EQ(by_name["CUSTOM_SETTING"], "visible");
  EXPECT_EQ(by_name["EXTRA_FLAG"], "on");
  EXPECT_EQ(by_name["SOME_API_KEY"], "<redacted>");
  EXPECT_EQ(by_name.count("PATH"), 0U);
  // Known settings come first, in documentation order.
  ASSERT_GE(shown.size(), known_settings().size());
  EXPECT_EQ(shown.front().first, known_settings().front().name);
}

TEST_F(ConfigTest, KnownSettingsAreDocumented) {
  for (const char* name : {"EDGE_RUNTIME_MODE",
                           "EDGECODER_BIND",
                           "COORDINATOR_PORT",
                           "INFERENCE_PORT",
                           "CONTROL_PLANE_PORT",
                           "IDE_PROVIDER_PORT",
                           "PORTAL_PORT",
                           "ANCHOR_PROXY_PORT",
                           "EDGECODER_DATA_DIR",
                           "EDGECODER_LOG_LEVEL",
                           "EDGECODER_INSECURE_DEV",
                           "EDGECODER_THREADS",
                           "EDGECODER_MAX_BODY_BYTES",
                           "EDGECODER_HEADER_TIMEOUT_MS",
                           "EDGECODER_BODY_TIMEOUT_MS",
                           "EDGECODER_IDLE_TIMEOUT_MS",
                           "EDGECODER_MAX_CONNECTIONS",
                           "EDGECODER_DRAIN_TIMEOUT_MS",
                           "TLS_CERT_FILE",
                           "TLS_KEY_FILE",
                           "DISABLE_SELF_AGENT",
                           "COORDINATOR_URL",
                           "INFERENCE_URL",
                           "CONTROL_PLANE_URL"}) {
    const SettingSpec* spec = find_setting(name);
    ASSERT_NE(spec, nullptr) << name;
    EXPECT_FALSE(spec->secret) << name;
    EXPECT_FALSE(spec->help.empty()) << name;
  }
  for (const char* name :
       {"DATABASE_URL", "MESH_AUTH_TOKEN", "ADMIN_API_TOKEN", "INFERENCE_AUTH_TOKEN",
        "PORTAL_SERVICE_TOKEN", "FEDERATION_TOKEN", "IDE_PROVIDER_API_KEY", "METRICS_TOKEN"}) {
    const SettingSpec* spec = find_setting(name);
    ASSERT_NE(spec, nullptr) << name;
    EXPECT_TRUE(spec->secret) << name;
  }
  EXPECT_EQ(find_setting("NOT_A_SETTING"), nullptr);
  for (const SettingSpec& spec : known_settings()) {
    EXPECT_EQ(spec.help.find('\n'), std::string_view::npos) << spec.name;
  }
}

TEST_F(ConfigTest, TypedGetters) {
  LoadOptions o = options();
  o.command_line = {{"EDGECODER_THREADS", " 8 "},
                    {"DISABLE_SELF_AGENT", "Yes"},
                    {"EDGECODER_INSECURE_DEV", "0"},
                    {"NUM", "12x"},
                    {"FLAG", "maybe"},
                    {"MESH_AUTH_TOKEN", "not-a-number-secret"}};
  Settings s = load_ok(o);
  EXPECT_EQ(s.get_int("EDGECODER_THREADS", 0, 64).value(), 8);
  EXPECT_EQ(s.get_int("COORDINATOR_PORT", 0, 65535).value(), 4301);
  EXPECT_TRUE(s.get_bool("DISABLE_SELF_AGENT").value());
  EXPECT_FALSE(s.get_bool("EDGECODER_INSECURE_DEV").value());
  EXPECT_FALSE(s.get_bool("UNSET_FLAG").value());

  auto bad_int = s.get_int("NUM", 0, 100);
  ASSERT_FALSE(bad_int.has_value());
  EXPECT_EQ(bad_int.error().detail, "NUM: expected an integer between 0 and 100, got '12x'");
  auto out_of_range = s.get_int("EDGECODER_THREADS", 0, 4);
  ASSERT_FALSE(out_of_range.has_value());
  EXPECT_NE(out_of_range.error().detail.find("got '"), std::string::npos);
  auto bad_bool = s.get_bool("FLAG");
  ASSERT_FALSE(bad_bool.has_value());
  EXPECT_NE(bad_bool.error().detail.find("FLAG"), std::string::npos);
  EXPECT_NE(bad_bool.error().detail.find("maybe"), std::string::npos);
  // A secret's value is never echoed.
  auto secret_int = s.get_int("MESH_AUTH_TOKEN", 0, 1);
  ASSERT_FALSE(secret_int.has_value());
  EXPECT_NE(secret_int.error().detail.find("MESH_AUTH_TOKEN"), std::string::npos);
  EXPECT_EQ(secret_int.error().detail.find("not-a-number-secret"), std::string::npos);
  EXPECT_EQ(s.get_or("UNSET_NAME", "fallback"), "fallback");

  s.set_generated("ADMIN_API_TOKEN", "gen");
  EXPECT_EQ(s.get("ADMIN_API_TOKEN"), "gen");
  EXPECT_EQ(s.source("ADMIN_API_TOKEN"), Source::generated);
  EXPECT_EQ(source_name(Source::generated), "generated");
}

TEST_F(ConfigTest, EmptyValueMeansUnset) {
  LoadOptions o = options();
  o.env_file = write("a.env", "COORDINATOR_PORT=\nMESH_AUTH_TOKEN=\n");
  Settings s = load_ok(o);
  EXPECT_FALSE(s.has("COORDINATOR_PORT"));
  EXPECT_EQ(s.get_int("COORDINATOR_PORT", 0, 65535).value(), 4301);  // default applies
  EXPECT_FALSE(s.has("MESH_AUTH_TOKEN"));
}

// parse_config over settings built from the command line layer.
Result<Config> config_from(std::map<std::string, std::string> cli) {
  LoadOptions o;
  o.default_env_file = "/nonexistent/edgecoder-test.env";
  o.command_line = std::move(cli);
  auto s = Settings::load(o);
  if (!s) return s.error();
  return parse_config(std::move(*s));
}

TEST_F(ConfigTest, ParseConfigDefaults) {
  auto c = config_from({{"EDGECODER_DATA_DIR", dir_.string()}});
  ASSERT_TRUE(c.has_value()) << c.error().detail;
  EXPECT_EQ(c->mode, Mode::all_in_one);
  EXPECT_EQ(c->bind_address, "127.0.0.1");
  EXPECT_EQ(c->ports.at(Service::coordinator), 4301);
  EXPECT_EQ(c->ports.at(Service::inference), 4302);
  EXPECT_EQ(c->ports.at(Service::control_plane), 4303);
  EXPECT_EQ(c->ports.at(Service::ide_provider), 4304);
  EXPECT_EQ(c->ports.at(Service::portal), 4310);
  EXPECT_EQ(c->ports.at(Service::anchor_proxy), 4311);
  EXPECT_EQ(c->data_dir, dir_);
  EXPECT_EQ(c->log_level, "info");
  EXPECT_FALSE(c->insecure_dev);
  EXPECT_FALSE(c->tls_cert_file.has_value());
  EXPECT_EQ(c->limits.max_body_bytes, 8U * 1024 * 1024);
  EXPECT_EQ(c->limits.header_timeout, std::chrono::milliseconds(10'000));
  EXPECT_EQ(c->limits.body_timeout, std::chrono::milliseconds(60'000));
  EXPECT_EQ(c->limits.idle_timeout, std::chrono::milliseconds(60'000));
  EXPECT_EQ(c->limits.max_connections, 1024U);
  EXPECT_EQ(c->drain_timeout, std::chrono::milliseconds(10'000));
  EXPECT_EQ(c->threads, 0);
  EXPECT_EQ(c->settings.get("COORDINATOR_PORT"), "4301");

  auto d = config_from({});
  ASSERT_TRUE(d.has_value());
  EXPECT_FALSE(d->data_dir.empty());  // default_data_dir()
}

TEST_F(ConfigTest, ParseConfigValues) {
  auto c = config_from({{"EDGE_RUNTIME_MODE", "control-plane"},
                        {"EDGECODER_BIND", "::"},
                        {"CONTROL_PLANE_PORT", "0"},
                        {"EDGECODER_LOG_LEVEL", "WARNING"},
                        {"EDGECODER_INSECURE_DEV", "1"},
                        {"EDGECODER_THREADS", "64"},
                        {"EDGECODER_MAX_BODY_BYTES", "1024"},
                        {"EDGECODER_DRAIN_TIMEOUT_MS", "0"}});
  ASSERT_TRUE(c.has_value()) << c.error().detail;
  EXPECT_EQ(c->mode, Mode::control_plane);
  EXPECT_EQ(c->bind_address, "::");
  EXPECT_EQ(c->ports.at(Service::control_plane), 0);
  EXPECT_EQ(c->log_level, "warn");
  EXPECT_TRUE(c->insecure_dev);
  EXPECT_EQ(c->threads, 64);
  EXPECT_EQ(c->limits.max_body_bytes, 1024U);
  EXPECT_EQ(c->drain_timeout, std::chrono::milliseconds(0));
}

TEST_F(ConfigTest, ParseConfigUnknownModeListsValidModes) {
  auto c = config_from({{"EDGE_RUNTIME_MODE", "scheduler"}});
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, Errc::invalid_argument);
  const std::string& d = c.error().detail;
  EXPECT_NE(d.find("EDGE_RUNTIME_MODE"), std::string::npos) << d;
  EXPECT_NE(d.find("scheduler"), std::string::npos) << d;
  for (const char* mode : {"all-in-one", "coordinator", "inference", "control-plane",
                           "ide-provider", "portal", "anchor-proxy", "agent"}) {
    EXPECT_NE(d.find(mode), std::string::npos) << mode << " missing from: " << d;
  }
}

TEST_F(ConfigTest, WorkerIsAnAliasOfAgent) {
  auto c = config_from({{"EDGE_RUNTIME_MODE", "worker"}});
  ASSERT_TRUE(c.has_value()) << c.error().detail;
  EXPECT_EQ(c->mode, Mode::agent);
  EXPECT_EQ(mode_name(c->mode), "agent");
}

TEST_F(ConfigTest, BadPortsNameTheSetting) {
  for (const char* bad : {"70000", "abc", "-1", "4301x", ""}) {
    auto c = config_from({{"COORDINATOR_PORT", bad}});
    if (std::string(bad).empty()) {  // blank = default
      EXPECT_TRUE(c.has_value());
      continue;
    }
    ASSERT_FALSE(c.has_value()) << bad;
    EXPECT_NE(c.error().detail.find("COORDINATOR_PORT"), std::string::npos) << c.error().detail;
    EXPECT_NE(c.error().detail.find(std::string("'") + bad + "'"), std::string::npos)
        << c.error().detail;
  }
  auto c = config_from({{"PORTAL_PORT", "65536"}});
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().detail.find("PORTAL_PORT"), std::string::npos);
  EXPECT_TRUE(config_from({{"PORTAL_PORT", "65535"}}).has_value());
}

TEST_F(ConfigTest, BadBindAddress) {
  for (const char* bad : {"localhost", "256.0.0.1", "1.2.3", "0.0.0.0:80", "example.com"}) {
    auto c = config_from({{"EDGECODER_BIND", bad}});
    ASSERT_FALSE(c.has_value()) << bad;
    EXPECT_NE(c.error().detail.find("EDGECODER_BIND"), std::string::npos) << c.error().detail;
  }
  EXPECT_TRUE(config_from({{"EDGECODER_BIND", "0.0.0.0"}}).has_value());
  EXPECT_TRUE(config_from({{"EDGECODER_BIND", "::1"}}).has_value());
}

TEST_F(ConfigTest, BadValuesOfOtherSettings) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"EDGECODER_LOG_LEVEL", "chatty"},     {"EDGECODER_THREADS", "65"},
      {"EDGECODER_INSECURE_DEV", "perhaps"}, {"EDGECODER_MAX_BODY_BYTES", "0"},
      {"EDGECODER_HEADER_TIMEOUT_MS", "0"},  {"EDGECODER_MAX_CONNECTIONS", "-5"},
  };
  for (const auto& [name, value] : cases) {
    auto c = config_from({{name, value}});
    ASSERT_FALSE(c.has_value()) << name;
    EXPECT_NE(c.error().detail.find(name), std::string::npos) << c.error().detail;
  }
}

TEST_F(ConfigTest, TlsNeedsBothReadableFiles) {
  const auto cert = write("cert.pem", "cert");
  const auto key = write("key.pem", "key");
  auto c = config_from({{"TLS_CERT_FILE", cert.string()}});
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().detail.find("TLS_KEY_FILE"), std::string::npos) << c.error().detail;

  c = config_from({{"TLS_KEY_FILE", key.string()}});
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().detail.find("TLS_CERT_FILE"), std::string::npos) << c.error().detail;

  c = config_from({{"TLS_CERT_FILE", cert.string()}, {"TLS_KEY_FILE", (dir_ / "nokey").string()}});
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().detail.find("TLS_KEY_FILE"), std::string::npos) << c.error().detail;

  c = config_from({{"TLS_CERT_FILE", cert.string()}, {"TLS_KEY_FILE", key.string()}});
  ASSERT_TRUE(c.has_value()) << c.error().detail;
  EXPECT_EQ(c->tls_cert_file, cert);
  EXPECT_EQ(c->tls_key_file, key);
}

TEST(ConfigModeTest, ModesAndServices) {
  for (Mode m : {Mode::all_in_one, Mode::coordinator, Mode::inference, Mode::control_plane,
                 Mode::ide_provider, Mode::portal, Mode::anchor_proxy, Mode::agent}) {
    EXPECT_EQ(parse_mode(mode_name(m)), m) << mode_name(m);
  }
  EXPECT_EQ(parse_mode("worker"), Mode::agent);
  EXPECT_FALSE(parse_mode("").has_value());
  EXPECT_FALSE(parse_mode("control_plane").has_value());

  using V = std::vector<Service>;
  EXPECT_EQ(services_for(Mode::all_in_one),
            (V{Service::coordinator, Service::inference, Service::control_plane}));
  EXPECT_EQ(services_for(Mode::coordinator), V{Service::coordinator});
  EXPECT_EQ(services_for(Mode::inference), V{Service::inference});
  EXPECT_EQ(services_for(Mode::control_plane), V{Service::control_plane});
  EXPECT_EQ(services_for(Mode::ide_provider), V{Service::ide_provider});
  EXPECT_EQ(services_for(Mode::portal), V{Service::portal});
  EXPECT_EQ(services_for(Mode::anchor_proxy), V{Service::anchor_proxy});
  EXPECT_TRUE(services_for(Mode::agent).empty());
  EXPECT_EQ(service_name(Service::control_plane), "control-plane");
  EXPECT_EQ(service_name(Service::anchor_proxy), "anchor-proxy");
}

TEST(ConfigModeTest, RequiredSecrets) {
  using V = std::vector<std::string_view>;
  const V three = {"MESH_AUTH_TOKEN", "ADMIN_API_TOKEN", "INFERENCE_AUTH_TOKEN"};
  EXPECT_EQ(required_secrets(Mode::coordinator), three);
  EXPECT_EQ(required_secrets(Mode::all_in_one), three);
  EXPECT_EQ(required_secrets(Mode::inference), V{"INFERENCE_AUTH_TOKEN"});
  EXPECT_EQ(required_secrets(Mode::control_plane), V{"ADMIN_API_TOKEN"});
  EXPECT_EQ(required_secrets(Mode::agent), V{"MESH_AUTH_TOKEN"});
  EXPECT_TRUE(required_secrets(Mode::ide_provider).empty());
  EXPECT_TRUE(required_secrets(Mode::portal).empty());
  EXPECT_TRUE(required_secrets(Mode::anchor_proxy).empty());
  for (Mode m :
       {Mode::all_in_one, Mode::coordinator, Mode::inference, Mode::control_plane, Mode::agent}) {
    for (std::string_view name : required_secrets(m)) {
      const SettingSpec* spec = find_setting(name);
      ASSERT_NE(spec, nullptr) << name;
      EXPECT_TRUE(spec->secret) << name;
    }
  }
}

}  // namespace
}  // namespace edgecoder::core
