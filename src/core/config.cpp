#include "core/config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "core/crypto.h"
#include "core/fs.h"
#include "core/log.h"

namespace edgecoder::core {
namespace {

// Documentation order: runtime and listeners, files and logging, HTTP limits, TLS, service wiring,
// then every secret. Empty default = unset. Help is one line; it feeds `config show` and the
// packaged env file.
constexpr std::array kConfigSettings = {
    SettingSpec{"EDGE_RUNTIME_MODE", "all-in-one",
                "Runtime mode: all-in-one, coordinator, inference, control-plane, ide-provider, "
                "portal, anchor-proxy or agent (alias worker)."},
    SettingSpec{"EDGECODER_BIND", "127.0.0.1",
                "IP address every listener binds to; 0.0.0.0 or :: exposes the node to the "
                "network."},
    SettingSpec{"COORDINATOR_PORT", "4301", "TCP port of the coordinator (mesh scheduler)."},
    SettingSpec{"INFERENCE_PORT", "4302", "TCP port of the inference service."},
    SettingSpec{"CONTROL_PLANE_PORT", "4303", "TCP port of the operator control plane."},
    SettingSpec{"IDE_PROVIDER_PORT", "4304", "TCP port of the OpenAI/Ollama-compatible IDE API."},
    SettingSpec{"PORTAL_PORT", "4310", "TCP port of the user portal."},
    SettingSpec{"ANCHOR_PROXY_PORT", "4311", "TCP port of the ingress/anchor proxy."},
    SettingSpec{"EDGECODER_DATA_DIR", "",
                "Data directory (mode 0700); empty = $XDG_DATA_HOME/edgecoder or "
                "~/.local/share/edgecoder."},
    SettingSpec{"EDGECODER_LOG_LEVEL", "info",
                "Log level: trace, debug, info, warn, error or off."},
    SettingSpec{"EDGECODER_INSECURE_DEV", "false",
                "Development only: let a standalone service start without its secrets."},
    SettingSpec{"EDGECODER_THREADS", "0", "Event-loop threads (0..64); 0 = min(cores, 4)."},
    SettingSpec{"EDGECODER_MAX_BODY_BYTES", "8388608",
                "Largest accepted HTTP request body, bytes."},
    SettingSpec{"EDGECODER_HEADER_TIMEOUT_MS", "10000",
                "Milliseconds a client has to send a whole request head."},
    SettingSpec{"EDGECODER_BODY_TIMEOUT_MS", "60000",
                "Milliseconds a client has to send a whole request body."},
    SettingSpec{"EDGECODER_IDLE_TIMEOUT_MS", "60000",
                "Milliseconds an idle keep-alive connection stays open."},
    SettingSpec{"EDGECODER_MAX_CONNECTIONS", "1024", "Concurrent connections per listener."},
    SettingSpec{"EDGECODER_DRAIN_TIMEOUT_MS", "10000",
                "Milliseconds to finish in-flight work after SIGTERM before closing."},
    SettingSpec{"TLS_CERT_FILE", "",
                "PEM certificate chain; set with TLS_KEY_FILE to serve HTTPS."},
    SettingSpec{"TLS_KEY_FILE", "", "PEM private key for TLS_CERT_FILE."},
    SettingSpec{"DISABLE_SELF_AGENT", "false",
                "all-in-one: do not run the embedded agent (1/true to disable)."},
    SettingSpec{"COORDINATOR_URL", "",
                "Base URL of the coordinator for agents and standalone services (agents: a "
                "comma-separated list to fail over through)."},
    SettingSpec{"INFERENCE_URL", "", "Base URL of the inference service."},
    SettingSpec{"CONTROL_PLANE_URL", "", "Base URL of the control plane."},
    SettingSpec{"DATABASE_URL", "",
                "PostgreSQL connection URL for the shared store; empty = SQLite in the data "
                "directory.",
                true},
    SettingSpec{"EDGECODER_RETENTION_DAYS", "30",
                "Days completed tasks, events and results are kept (ledgers are kept); 0 = "
                "forever."},
    SettingSpec{"EDGECODER_PG_POOL_SIZE", "8", "PostgreSQL connections per process."},
    SettingSpec{"EDGECODER_PG_STATEMENT_TIMEOUT_MS", "30000",
                "PostgreSQL statement_timeout for store queries, in milliseconds."},
    SettingSpec{"LOCAL_MODEL_PROVIDER", "edgecoder-local",
                "Model provider: edgecoder-local (deterministic offline stub, not an LLM), "
                "ollama-local (alias ollama) or openai (any OpenAI-compatible server)."},
    SettingSpec{"OLLAMA_HOST", "http://127.0.0.1:11434", "Base URL of the Ollama server."},
    SettingSpec{"OLLAMA_MODEL", "qwen3.5:9b", "Ollama model for code generation and chat."},
    SettingSpec{"OLLAMA_COORDINATOR_MODEL", "",
                "Ollama model for decomposition and escalation; empty = OLLAMA_MODEL."},
    SettingSpec{"OPENAI_BASE_URL", "http://127.0.0.1:8080/v1",
                "Base URL of an OpenAI-compatible server (llama.cpp, vLLM, LM Studio, LocalAI), "
                "with or without /v1."},
    SettingSpec{"OPENAI_MODEL", "",
                "Model for code generation and chat; empty = the first model the server lists."},
    SettingSpec{"OPENAI_COORDINATOR_MODEL", "",
                "Model for decomposition and escalation; empty = OPENAI_MODEL."},
    SettingSpec{"MODEL_CONNECT_TIMEOUT_MS", "5000", "Milliseconds to connect to the model server."},
    SettingSpec{"MODEL_FIRST_TOKEN_TIMEOUT_MS", "120000",
                "Milliseconds from a model request to its first token (includes model loading)."},
    SettingSpec{"MODEL_TOTAL_TIMEOUT_MS", "600000", "Milliseconds a whole model request may take."},
    SettingSpec{"MODEL_HEALTH_INTERVAL_MS", "10000",
                "Milliseconds between model server reachability checks (for /ready)."},
    SettingSpec{"INFERENCE_REQUIRE_SIGNED_COORDINATOR_REQUESTS", "false",
                "Inference: require Ed25519-signed coordinator requests on /decompose, /escalate "
                "and /chat (on anyway when a trusted key is set)."},
    SettingSpec{"INFERENCE_COORDINATOR_PEER_ID", "",
                "Inference: peer id of the coordinator whose key is "
                "INFERENCE_COORDINATOR_PUBLIC_KEY_PEM."},
    SettingSpec{"INFERENCE_COORDINATOR_PUBLIC_KEY_PEM", "",
                "Inference: that coordinator's Ed25519 public key (PEM, base64 or hex)."},
    SettingSpec{"INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON", "",
                "Inference: more trusted coordinators, as a JSON object peerId -> public key."},
    SettingSpec{"INFERENCE_MAX_SIGNATURE_SKEW_MS", "120000",
                "Inference: largest accepted distance between a signature's timestamp and now."},
    SettingSpec{"INFERENCE_NONCE_TTL_MS", "300000",
                "Inference: milliseconds a signed request's nonce is remembered (replay window; at "
                "least twice the skew)."},
    SettingSpec{"AUTO_APPROVE_AGENTS", "false",
                "Coordinator: approve every agent that registers with the mesh token (else an "
                "operator or a registration token approves it)."},
    SettingSpec{"CREDITS_ENFORCED", "false",
                "Coordinator: a task submission holds TASK_SUBMIT_CREDITS on its submitter's "
                "account (402/403 when it cannot pay), spent when the task completes, refunded "
                "when it fails or is cancelled."},
    SettingSpec{"TASK_SUBMIT_CREDITS", "1",
                "Coordinator: credits a task costs when CREDITS_ENFORCED is on."},
    SettingSpec{"COORDINATOR_LEASE_BUDGET_MS", "60000",
                "Coordinator: milliseconds added to a subtask's timeoutMs to size its lease (model "
                "time); heartbeats renew it."},
    SettingSpec{"COORDINATOR_LEASE_SWEEP_MS", "1000",
                "Coordinator: milliseconds between sweeps that requeue expired leases."},
    SettingSpec{"COORDINATOR_MAX_ATTEMPTS", "3",
                "Coordinator: expired leases before a subtask fails (default for submissions "
                "without maxAttempts)."},
    SettingSpec{"COORDINATOR_AGENT_ONLINE_MS", "120000",
                "Coordinator: an agent seen within this many milliseconds counts as online."},
    SettingSpec{"COORDINATOR_DECOMPOSE_TIMEOUT_MS", "150000",
                "Coordinator: milliseconds to wait for the inference service's /decompose."},
    SettingSpec{"COORDINATOR_ESCALATE_TIMEOUT_MS", "150000",
                "Coordinator: milliseconds to wait for the inference service's /escalate when "
                "an agent asks POST /escalate."},
    SettingSpec{"COORDINATOR_ENVELOPES", "true",
                "Coordinator: send subtasks as X25519 + AES-256-GCM envelopes to agents that "
                "registered an x25519PublicKey (false = always in clear)."},
    SettingSpec{"COORDINATOR_EVENTS_POLL_MS", "250",
                "Coordinator: milliseconds between store polls of a task event stream (SSE)."},
    SettingSpec{"COORDINATOR_PUBLIC_URL", "",
                "Coordinator: URL it advertises in /identity; empty = "
                "http://127.0.0.1:COORDINATOR_PORT."},
    SettingSpec{"COORDINATOR_PEER_ID", "",
                "Coordinator: peer id in /identity; empty = derived from COORDINATOR_PUBLIC_URL."},
    SettingSpec{"CONTROL_ROLLOUT_POLL_MS", "2000",
                "Control plane: milliseconds between passes of the rollout reconciler (agents' "
                "reports read back, lost switches re-sent, auto-promotion)."},
    SettingSpec{"NETWORK_MODE", "public_mesh",
                "Coordinator: public_mesh or enterprise_overlay (shown by /identity, /features)."},
    SettingSpec{"REQUIRE_SIGNED_AGENTS", "false",
                "Coordinator: refuse agent /heartbeat, /pull, /result and /release requests "
                "that are not Ed25519-signed (401 signature_required)."},
    SettingSpec{"SECURITY_MAX_SKEW_MS", "120000",
                "Coordinator: largest accepted distance between a signed agent request's "
                "x-timestamp-ms and the coordinator's clock."},
    SettingSpec{"SECURITY_NONCE_TTL_MS", "300000",
                "Coordinator: milliseconds a signed agent request's nonce is remembered in the "
                "store (replay window, shared by coordinators on one database)."},
    SettingSpec{"AGENT_RATE_LIMIT_MAX", "1200",
                "Coordinator: signed requests one agent may make per AGENT_RATE_LIMIT_WINDOW_MS "
                "before 429 rate_limited (0 = no limit); far above a healthy agent's rate."},
    SettingSpec{"AGENT_RATE_LIMIT_WINDOW_MS", "60000",
                "Coordinator: length of the fixed window of AGENT_RATE_LIMIT_MAX."},
    SettingSpec{"BEHAVIOR_AUTO_BLACKLIST", "true",
                "Coordinator: blacklist an agent (signed chain, reporter behavioral_monitoring) "
                "when evidence honest agents cannot produce reaches its threshold."},
    SettingSpec{"BEHAVIOR_WINDOW_MS", "600000",
                "Coordinator: window in which behaviour evidence and warnings are counted."},
    SettingSpec{"BEHAVIOR_PROTOCOL_ABUSE_THRESHOLD", "10",
                "Coordinator: bad signatures plus replayed nonces in a window that blacklist an "
                "agent (credential_abuse)."},
    SettingSpec{"BEHAVIOR_FORGED_RESULT_THRESHOLD", "3",
                "Coordinator: results for lease attempts another agent held, in a window, that "
                "blacklist an agent (forged_results)."},
    SettingSpec{"BEHAVIOR_REGISTRATION_THRESHOLD", "200",
                "Coordinator: registrations in a window that blacklist an agent (dos_behavior); "
                "above what a crash-looping agent under systemd produces."},
    SettingSpec{"IOS_BATTERY_PULL_MIN_INTERVAL_MS", "45000",
                "Coordinator power policy: an iOS agent on battery gets at most one subtask per "
                "this many milliseconds."},
    SettingSpec{"IOS_BATTERY_TASK_STOP_LEVEL_PCT", "20",
                "Coordinator power policy: an iOS agent on battery at or below this percentage "
                "gets no subtasks."},
    SettingSpec{"TUNNEL_IDLE_TTL_MS", "90000",
                "Coordinator agent mesh: a tunnel without a relay for this many milliseconds "
                "closes (both ends get a close notice)."},
    SettingSpec{"TUNNEL_MAX_RELAYS_PER_MIN", "120",
                "Coordinator agent mesh: relays per tunnel per minute (then 429 "
                "tunnel_relay_cap_reached)."},
    SettingSpec{"RELAY_RATE_LIMIT_PER_10S", "80",
                "Coordinator agent mesh: relays per agent per 10 s (then 429 relay_rate_limited)."},
    SettingSpec{"DIRECT_WORK_OFFERS_PER_10S", "20",
                "Coordinator agent mesh: peer-direct offers per agent per 10 s (then 429 "
                "direct_work_offer_rate_limited)."},
    SettingSpec{"DIRECT_WORK_OFFER_TTL_MS", "600000",
                "Coordinator agent mesh: an offer not accepted (or accepted and not completed) "
                "within this many milliseconds expires."},
    SettingSpec{"MESH_WS_PING_MS", "30000",
                "Coordinator: a /mesh/ws socket silent this many milliseconds is pinged, and "
                "dropped when silent twice as long."},
    SettingSpec{"MESH_PEER_TTL_MS", "86400000",
                "Coordinator: a mesh peer not seen (registration or socket) for this many "
                "milliseconds is forgotten."},
    // The agent (src/agent, docs/agent.md).
    SettingSpec{"AGENT_ID", "",
                "Agent: id it registers with; empty = the one kept in the data directory "
                "(generated once)."},
    SettingSpec{"AGENT_HEARTBEAT_MS", "5000",
                "Agent: milliseconds between heartbeats (which also renew its leases)."},
    SettingSpec{"AGENT_POLL_MS", "1000",
                "Agent: milliseconds between /pull calls while the coordinator has no work."},
    SettingSpec{"MAX_CONCURRENT_TASKS", "1", "Agent: subtasks it works on at once (1..64)."},
    SettingSpec{"COORDINATOR_DISCOVERY_URL", "",
                "Agent: a coordinator registry answering {coordinators:[{coordinatorUrl}]} (the "
                "control plane's <CONTROL_PLANE_URL>/network/coordinators); its coordinators "
                "are added after COORDINATOR_URL's to the list the agent fails over through. "
                "Empty = none."},
    SettingSpec{"COORDINATOR_DISCOVERY_MS", "45000",
                "Agent: milliseconds between fetches of COORDINATOR_DISCOVERY_URL."},
    SettingSpec{"AGENT_REPORT_CPU_USAGE", "false",
                "Agent: send cpuUsagePct (1-minute load over CPU count) in its power telemetry; "
                "above 85 the coordinator then defers its work. Off by default: the load "
                "includes the agent's own runs and all else on a busy host."},
    SettingSpec{"AGENT_DEVICE_TYPE", "",
                "Agent: deviceType in its power telemetry: desktop, laptop or server (server: "
                "the coordinator's power policy never defers it); empty = detect (laptop when "
                "the host has a system battery)."},
    SettingSpec{"AGENT_MAX_ITERATIONS", "2",
                "Agent: code runs with its own model per subtask (plan and code, then reflect on "
                "the error), 1..10."},
    SettingSpec{"AGENT_ESCALATE", "true",
                "Agent: when its own iterations fail, ask the coordinator's /escalate for a "
                "larger model's code and run that."},
    // The code sandbox (src/sandbox, docs/sandbox.md).
    SettingSpec{"SANDBOX_MODE", "bwrap",
                "Sandbox for generated code: bwrap, process (weak isolation), docker, or none "
                "(no isolation; tenant work is refused). Never replaced by a weaker one."},
    SettingSpec{"SANDBOX_TIMEOUT_MS", "10000",
                "Wall-clock milliseconds a program may run before its whole process tree is "
                "killed."},
    SettingSpec{"SANDBOX_CPU_SECONDS", "10", "CPU seconds per sandboxed process (RLIMIT_CPU)."},
    SettingSpec{"SANDBOX_MEMORY_MB", "512",
                "Memory per run, MiB: address space (RLIMIT_AS), the JS heap, and cgroup "
                "memory.max when cgroup v2 is delegated."},
    SettingSpec{"SANDBOX_NODE_VM_RESERVE_MB", "1024",
                "Extra address space, MiB, for Node's V8 reservations on top of "
                "SANDBOX_MEMORY_MB (RLIMIT_AS only; not memory)."},
    SettingSpec{"SANDBOX_MAX_PROCESSES", "64",
                "Processes per run (RLIMIT_NPROC, cgroup pids.max); stops fork bombs."},
    SettingSpec{"SANDBOX_MAX_FILE_MB", "16", "Largest file a program may write, MiB."},
    SettingSpec{"SANDBOX_WORK_DIR_MB", "64", "Size of the tmpfs /work and /tmp, MiB each."},
    SettingSpec{"SANDBOX_MAX_OPEN_FILES", "64", "Open files per process (RLIMIT_NOFILE)."},
    SettingSpec{"SANDBOX_MAX_OUTPUT_BYTES", "1048576",
                "Bytes of stdout and of stderr kept per run; the rest is discarded and marked."},
    SettingSpec{"SANDBOX_UID", "65534",
                "Unprivileged uid programs run as when edgecoder runs as root."},
    SettingSpec{"SANDBOX_GID", "65534", "Gid programs run as when edgecoder runs as root."},
    SettingSpec{"SANDBOX_PYTHON", "/usr/bin/python3", "Python 3 interpreter (absolute path)."},
    SettingSpec{"SANDBOX_NODE", "/usr/bin/node", "Node.js interpreter (absolute path)."},
    SettingSpec{"SANDBOX_BWRAP", "/usr/bin/bwrap", "bubblewrap executable."},
    SettingSpec{"SANDBOX_EXTRA_RO_BINDS", "",
                "bwrap: extra host directories bound read-only, ':'-separated (e.g. an "
                "interpreter under /opt); never /home, /root, /etc or the data directory."},
    SettingSpec{"SANDBOX_CGROUP", "auto",
                "cgroup v2 per-run limits: auto (a delegated cgroup when present), off, or a "
                "cgroup v2 directory."},
    SettingSpec{"SANDBOX_WORK_ROOT", "",
                "process/none modes: where per-run work directories go; empty = $TMPDIR or "
                "/tmp."},
    SettingSpec{"SANDBOX_DOCKER", "docker", "docker mode: the docker CLI."},
    SettingSpec{"SANDBOX_DOCKER_PYTHON_IMAGE", "python:3.11-slim",
                "docker mode: image for Python (never pulled by a run)."},
    SettingSpec{"SANDBOX_DOCKER_NODE_IMAGE", "node:20-slim",
                "docker mode: image for JavaScript (never pulled by a run)."},
    SettingSpec{"SANDBOX_DOCKER_CPUS", "1", "docker mode: --cpus for each container."},
    SettingSpec{"IDE_PROJECT_ROOTS", "",
                "IDE provider: ':'-separated directories its tools may work in (empty = none)."},
    SettingSpec{"IDE_ROUTE_ORDER", "local,mesh",
                "IDE provider: routes tried in order (local model provider, mesh)."},
    SettingSpec{"IDE_MESH_LANGUAGE", "python",
                "IDE provider: language of the tasks it sends to the mesh."},
    SettingSpec{"IDE_MESH_TIMEOUT_MS", "300000",
                "IDE provider: how long a mesh task may take before it is cancelled."},
    SettingSpec{"IDE_APPROVAL_TIMEOUT_MS", "300000",
                "IDE provider: how long a tool call waits for approval before it is rejected."},
    SettingSpec{"IDE_AGENT_MAX_STEPS", "20", "IDE provider: model turns per /v1/ide/chat request."},
    SettingSpec{"EDGECODER_TRUST_CONTAINER_NETWORK", "false",
                "Inside a container only: let the IDE provider listen beyond loopback without "
                "an API key (publish its port on the host's 127.0.0.1)."},
    SettingSpec{"MESH_AUTH_TOKEN", "",
                "Mesh credential for agents and task clients (x-mesh-token).", true},
    SettingSpec{"AGENT_REGISTRATION_TOKEN", "",
                "Agent: registration token from the portal or an operator (approves the agent).",
                true},
    SettingSpec{"ADMIN_API_TOKEN", "", "Operator credential (x-admin-token or Bearer).", true},
    SettingSpec{"ALLOWED_ADMIN_IPS", "",
                "Operator routes (control plane, coordinator /admin/*): comma-separated IP "
                "addresses or CIDR ranges allowed to call them; empty = any address."},
    SettingSpec{"TRUSTED_PROXIES", "",
                "Comma-separated IP addresses or CIDR ranges of reverse proxies whose "
                "X-Forwarded-For is believed for ALLOWED_ADMIN_IPS; empty = none."},
    SettingSpec{"INFERENCE_AUTH_TOKEN", "", "Credential for inference routes (x-inference-token).",
                true},
    SettingSpec{"PORTAL_SERVICE_TOKEN", "",
                "Credential for internal portal routes (x-portal-service-token).", true},
    SettingSpec{"FEDERATION_TOKEN", "",
                "Credential coordinators present to each other (x-federation-token).", true},
    SettingSpec{"IDE_PROVIDER_API_KEY", "",
                "Bearer key for the IDE provider when it listens beyond loopback.", true},
    SettingSpec{"METRICS_TOKEN", "", "Optional Bearer token protecting /metrics.", true},
    SettingSpec{"OPENAI_API_KEY", "",
                "API key sent as Bearer to the OpenAI-compatible server (empty = none).", true},
};

constexpr std::string_view kConfigRedacted = "<redacted>";
constexpr std::string_view kConfigUnset = "<unset>";

bool config_is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view config_trim(std::string_view s) {
  while (!s.empty() && (config_is_space(s.front()) || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (config_is_space(s.back()) || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

bool config_valid_key(std::string_view key) {
  if (key.empty()) return false;
  for (std::size_t i = 0; i < key.size(); ++i) {
    const char c = key[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string config_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return out;
}

// Error text never quotes a value from the file: it may be a secret.
Error config_line_error(std::size_t line, std::string_view what) {
  return make_error(Errc::invalid_argument,
                    "env file line " + std::to_string(line) + ": " + std::string(what));
}

// After a closing quote only blanks or a comment may follow.
bool config_rest_is_comment(std::string_view rest) {
  rest = config_trim(rest);
  return rest.empty() || rest.front() == '#';
}

// Strips the newline that `echo token > file` and most editors leave; nothing else, so a
// secret's own whitespace survives.
std::string config_trim_one_newline(std::string s) {
  if (!s.empty() && s.back() == '\n') {
    s.pop_back();
    if (!s.empty() && s.back() == '\r') s.pop_back();
  }
  return s;
}

// Unknown names that look like credentials are hidden in `config show` as well.
bool config_looks_secret(std::string_view name, std::string_view value) {
  static constexpr std::array<std::string_view, 8> kMarkers = {
      "TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH", "DSN"};
  const std::string upper = [&] {
    std::string u(name);
    for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return u;
  }();
  // NAME_FILE of a known secret holds a path, not the secret.
  if (upper.ends_with("_FILE")) {
    const SettingSpec* base = find_setting(std::string_view(upper).substr(0, upper.size() - 5));
    if (base != nullptr && base->secret) return false;
  }
  // A URL may carry user:password@.
  if (value.find('@') != std::string_view::npos && value.find("://") != std::string_view::npos) {
    return true;
  }
  return std::any_of(kMarkers.begin(), kMarkers.end(),
                     [&upper](std::string_view m) { return upper.find(m) != std::string::npos; });
}

Result<std::vector<std::pair<std::string, std::string>>> config_read_env_file(
    const std::filesystem::path& path) {
  auto text = fs::read_file(path);
  if (!text) {
    return make_error(Errc::invalid_argument,
                      "cannot read env file '" + path.string() + "': " + text.error().detail);
  }
  auto parsed = parse_env_file(*text);
  if (!parsed) {
    return make_error(Errc::invalid_argument, path.string() + ": " + parsed.error().detail);
  }
  return parsed;
}

Result<int> config_port(const Settings& settings, std::string_view name) {
  auto v = settings.get_int(name, 0, 65535);
  if (!v) return v.error();
  return static_cast<int>(*v);
}

Result<std::chrono::milliseconds> config_ms(const Settings& settings, std::string_view name,
                                            std::int64_t min) {
  auto v = settings.get_int(name, min, 3'600'000);  // at most one hour
  if (!v) return v.error();
  return std::chrono::milliseconds(*v);
}

Result<void> config_check_readable(std::string_view name, const std::filesystem::path& path) {
  if (::access(path.c_str(), R_OK) != 0) {
    return make_error(Errc::invalid_argument, std::string(name) + ": cannot read '" +
                                                  path.string() + "': " + std::strerror(errno));
  }
  return {};
}

// A model server URL: http(s)://... For OLLAMA_HOST a bare host[:port] is also accepted (the form
// `ollama serve` itself reads); the model library adds http:// then.
Result<void> config_check_url(const Settings& settings, std::string_view name, bool bare_ok) {
  const std::string value = settings.get_or(name, "");
  if (value.empty()) return {};
  const auto sep = value.find("://");
  if (sep == std::string::npos) {
    if (bare_ok && value.find_first_of("/ ") == std::string::npos) return {};
    return make_error(
        Errc::invalid_argument,
        std::string(name) + ": expected an http:// or https:// URL, got '" + value + "'");
  }
  const std::string scheme = config_lower(std::string_view(value).substr(0, sep));
  if ((scheme != "http" && scheme != "https") || sep + 3 >= value.size()) {
    return make_error(
        Errc::invalid_argument,
        std::string(name) + ": expected an http:// or https:// URL, got '" + value + "'");
  }
  return {};
}

// The model provider and inference settings (issue 5). The model and inference libraries parse
// them into their own structs; this check makes a bad value stop the process at start, naming
// the setting, whatever the mode.
Result<void> config_check_model_settings(const Settings& settings) {
  const std::string provider = config_lower(settings.get_or("LOCAL_MODEL_PROVIDER", ""));
  if (!provider.empty() && provider != "edgecoder-local" && provider != "ollama-local" &&
      provider != "ollama" && provider != "openai") {
    return make_error(Errc::invalid_argument,
                      "LOCAL_MODEL_PROVIDER: unknown provider '" + provider +
                          "'; valid: edgecoder-local, ollama-local (alias ollama), openai");
  }
  if (auto ok = config_check_url(settings, "OLLAMA_HOST", true); !ok) return ok.error();
  if (auto ok = config_check_url(settings, "OPENAI_BASE_URL", false); !ok) return ok.error();
  static constexpr std::array<std::pair<std::string_view, std::int64_t>, 6> kDurations = {{
      {"MODEL_CONNECT_TIMEOUT_MS", 3'600'000},
      {"MODEL_FIRST_TOKEN_TIMEOUT_MS", 86'400'000},
      {"MODEL_TOTAL_TIMEOUT_MS", 86'400'000},
      {"MODEL_HEALTH_INTERVAL_MS", 86'400'000},
      {"INFERENCE_MAX_SIGNATURE_SKEW_MS", 86'400'000},
      {"INFERENCE_NONCE_TTL_MS", 86'400'000},
  }};
  for (const auto& [name, max] : kDurations) {
    if (auto v = settings.get_int(name, 1, max); !v) return v.error();
  }
  if (auto v = settings.get_bool("INFERENCE_REQUIRE_SIGNED_COORDINATOR_REQUESTS"); !v) {
    return v.error();
  }
  const bool peer = settings.has("INFERENCE_COORDINATOR_PEER_ID");
  const auto pem = settings.get("INFERENCE_COORDINATOR_PUBLIC_KEY_PEM");
  if (peer != pem.has_value()) {
    return make_error(Errc::invalid_argument,
                      "INFERENCE_COORDINATOR_PEER_ID and INFERENCE_COORDINATOR_PUBLIC_KEY_PEM "
                      "must be set together");
  }
  if (pem) {
    if (auto key = crypto::ed25519_public_key_parse(*pem); !key) {
      return make_error(Errc::invalid_argument,
                        "INFERENCE_COORDINATOR_PUBLIC_KEY_PEM: " + key.error().detail);
    }
  }
  if (auto text = settings.get("INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON")) {
    const auto json = nlohmann::json::parse(*text, nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
      return make_error(Errc::invalid_argument,
                        "INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON: expected a JSON object "
                        "{\"<peerId>\": \"<public key>\", ...}");
    }
    for (const auto& [peer_id, key] : json.items()) {
      if (!key.is_string() || !crypto::ed25519_public_key_parse(key.get<std::string>())) {
        return make_error(Errc::invalid_argument,
                          "INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON: the key of peer '" + peer_id +
                              "' is not an Ed25519 public key");
      }
    }
  }
  return {};
}

}  // namespace

std::span<const SettingSpec> known_settings() { return kConfigSettings; }

const SettingSpec* find_setting(std::string_view name) {
  for (const SettingSpec& spec : kConfigSettings) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::string_view source_name(Source source) {
  switch (source) {
    case Source::default_value:
      return "default";
    case Source::env_file:
      return "env-file";
    case Source::environment:
      return "environment";
    case Source::command_line:
      return "command-line";
    case Source::secret_file:
      return "secret-file";
    case Source::credential:
      return "credential";
    case Source::generated:
      return "generated";
  }
  return "default";
}

Result<std::vector<std::pair<std::string, std::string>>> parse_env_file(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);

    line = config_trim(line);
    if (line.empty() || line.front() == '#') continue;
    if (line.starts_with("export") && line.size() > 6 && config_is_space(line[6])) {
      line = config_trim(line.substr(6));
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return config_line_error(line_no, "expected KEY=VALUE");
    const std::string_view key = config_trim(line.substr(0, eq));
    if (!config_valid_key(key)) {
      return config_line_error(line_no, "invalid name (letters, digits and _ only)");
    }
    const std::string_view raw = line.substr(eq + 1);
    const std::string_view value = config_trim(raw);
    std::string parsed;

    if (!value.empty() && value.front() == '\'') {
      const auto close = value.find('\'', 1);
      if (close == std::string_view::npos) {
        return config_line_error(line_no, "unterminated single quote in " + std::string(key));
      }
      if (!config_rest_is_comment(value.substr(close + 1))) {
        return config_line_error(line_no,
                                 "unexpected text after the closing quote of " + std::string(key));
      }
      parsed = value.substr(1, close - 1);
    } else if (!value.empty() && value.front() == '"') {
      std::size_t i = 1;
      bool closed = false;
      for (; i < value.size(); ++i) {
        const char c = value[i];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\' && i + 1 < value.size()) {
          const char next = value[++i];
          switch (next) {
            case 'n':
              parsed.push_back('\n');
              break;
            case 't':
              parsed.push_back('\t');
              break;
            case 'r':
              parsed.push_back('\r');
              break;
            case '"':
            case '\\':
            case '$':
            case '`':
              parsed.push_back(next);
              break;
            default:  // as in sh: an unknown escape keeps its backslash
              parsed.push_back('\\');
              parsed.push_back(next);
          }
          continue;
        }
        parsed.push_back(c);
      }
      if (!closed) {
        return config_line_error(line_no, "unterminated double quote in " + std::string(key));
      }
      if (!config_rest_is_comment(value.substr(i + 1))) {
        return config_line_error(line_no,
                                 "unexpected text after the closing quote of " + std::string(key));
      }
    } else {
      // An unquoted value ends at a '#' that follows a blank ("A=b #note"); "A=b#c" keeps it.
      std::string_view v = raw;
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '#' && i > 0 && config_is_space(v[i - 1])) {
          v = v.substr(0, i);
          break;
        }
      }
      parsed = config_trim(v);
    }
    out.emplace_back(std::string(key), std::move(parsed));
  }
  return out;
}

Result<Settings> Settings::load(const LoadOptions& options) {
  Settings s;
  for (const SettingSpec& spec : kConfigSettings) {
    s.values_[std::string(spec.name)] =
        Value{std::string(spec.default_value), Source::default_value};
  }

  std::optional<std::filesystem::path> file = options.env_file;
  if (!file && !options.default_env_file.empty()) {
    std::error_code ec;
    // The packaged default is optional: absent or unreadable (another user's file) is not an
    // error; a readable but malformed one is.
    if (std::filesystem::is_regular_file(options.default_env_file, ec) &&
        ::access(options.default_env_file.c_str(), R_OK) == 0) {
      file = options.default_env_file;
    }
  }
  if (file) {
    auto pairs = config_read_env_file(*file);
    if (!pairs) return pairs.error();
    for (auto& [k, v] : *pairs) s.values_[k] = Value{std::move(v), Source::env_file};
    s.env_file_used_ = *file;
  }
  for (const auto& [k, v] : options.environment) s.values_[k] = Value{v, Source::environment};
  for (const auto& [k, v] : options.command_line) s.values_[k] = Value{v, Source::command_line};

  std::string credentials_dir;
  for (const auto& [k, v] : options.environment) {
    if (k == "CREDENTIALS_DIRECTORY") credentials_dir = v;
  }

  for (const SettingSpec& spec : kConfigSettings) {
    if (!spec.secret || s.has(spec.name)) continue;
    const std::string file_name = std::string(spec.name) + "_FILE";
    if (auto path = s.get(file_name)) {
      auto content = fs::read_file(*path);
      if (!content) {
        // The detail from read_file names the path and errno text only, never the content.
        return make_error(Errc::invalid_argument,
                          file_name + ": cannot read secret file: " + content.error().detail);
      }
      std::string secret = config_trim_one_newline(std::move(*content));
      if (secret.empty()) {
        return make_error(Errc::invalid_argument,
                          file_name + ": secret file '" + *path + "' is empty");
      }
      s.values_[std::string(spec.name)] = Value{std::move(secret), Source::secret_file};
      continue;
    }
    if (credentials_dir.empty()) continue;
    const std::filesystem::path cred = std::filesystem::path(credentials_dir) / spec.name;
    std::error_code ec;
    if (!std::filesystem::exists(cred, ec)) continue;
    auto content = fs::read_file(cred);
    if (!content) {
      return make_error(
          Errc::invalid_argument,
          std::string(spec.name) + ": cannot read credential: " + content.error().detail);
    }
    std::string secret = config_trim_one_newline(std::move(*content));
    if (!secret.empty()) {
      s.values_[std::string(spec.name)] = Value{std::move(secret), Source::credential};
    }
  }
  return s;
}

// An empty value counts as unset ("NAME=" in an env file blanks a setting, as with systemd).
std::optional<std::string> Settings::get(std::string_view name) const {
  const auto it = values_.find(name);
  if (it == values_.end() || it->second.value.empty()) return std::nullopt;
  return it->second.value;
}

std::string Settings::get_or(std::string_view name, std::string_view fallback) const {
  auto v = get(name);
  return v ? *v : std::string(fallback);
}

Source Settings::source(std::string_view name) const {
  const auto it = values_.find(name);
  return it == values_.end() ? Source::default_value : it->second.source;
}

Result<std::int64_t> Settings::get_int(std::string_view name, std::int64_t min,
                                       std::int64_t max) const {
  const SettingSpec* spec = find_setting(name);
  std::optional<std::string> raw = get(name);
  // A blanked known setting falls back to its documented default.
  if (!raw && spec != nullptr && !spec->default_value.empty())
    raw = std::string(spec->default_value);
  auto fail = [&] {
    const bool secret = spec != nullptr && spec->secret;
    return make_error(
        Errc::invalid_argument,
        std::string(name) + ": expected an integer between " + std::to_string(min) + " and " +
            std::to_string(max) +
            (secret ? std::string(", got an invalid value") : ", got '" + raw.value_or("") + "'"));
  };
  if (!raw) return fail();
  const std::string_view text = config_trim(*raw);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
      value > max) {
    return fail();
  }
  return value;
}

Result<bool> Settings::get_bool(std::string_view name) const {
  const SettingSpec* spec = find_setting(name);
  std::optional<std::string> raw = get(name);
  if (!raw && spec != nullptr && !spec->default_value.empty())
    raw = std::string(spec->default_value);
  if (!raw) return false;  // an unset flag is off
  const std::string v = config_lower(config_trim(*raw));
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  const bool secret = spec != nullptr && spec->secret;
  return make_error(Errc::invalid_argument,
                    std::string(name) + ": expected a boolean (1/0, true/false, yes/no, on/off)" +
                        (secret ? std::string(", got an invalid value") : ", got '" + *raw + "'"));
}

void Settings::set_generated(std::string name, std::string value) {
  values_[std::move(name)] = Value{std::move(value), Source::generated};
}

std::vector<std::pair<std::string, std::string>> Settings::redacted() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const SettingSpec& spec : kConfigSettings) {
    const auto it = values_.find(spec.name);
    const std::string value = it == values_.end() ? std::string() : it->second.value;
    if (spec.secret) {
      out.emplace_back(spec.name, value.empty() ? kConfigUnset : kConfigRedacted);
    } else {
      out.emplace_back(spec.name, value);
    }
  }
  // Unknown names only when the operator put them in the env file or on the command line (or the
  // node generated them): the rest of the process environment (PATH, HOME, ...) is not
  // configuration and would bury the settings that are.
  for (const auto& [name, v] : values_) {
    if (find_setting(name) != nullptr) continue;
    if (v.source == Source::environment || v.source == Source::default_value) continue;
    if (config_looks_secret(name, v.value) || v.source == Source::generated) {
      out.emplace_back(name, v.value.empty() ? kConfigUnset : kConfigRedacted);
    } else {
      out.emplace_back(name, v.value);
    }
  }
  return out;
}

std::optional<Mode> parse_mode(std::string_view name) {
  if (name == "all-in-one") return Mode::all_in_one;
  if (name == "coordinator") return Mode::coordinator;
  if (name == "inference") return Mode::inference;
  if (name == "control-plane") return Mode::control_plane;
  if (name == "ide-provider") return Mode::ide_provider;
  if (name == "portal") return Mode::portal;
  if (name == "anchor-proxy") return Mode::anchor_proxy;
  if (name == "agent" || name == "worker") return Mode::agent;
  return std::nullopt;
}

std::string_view mode_name(Mode mode) {
  switch (mode) {
    case Mode::all_in_one:
      return "all-in-one";
    case Mode::coordinator:
      return "coordinator";
    case Mode::inference:
      return "inference";
    case Mode::control_plane:
      return "control-plane";
    case Mode::ide_provider:
      return "ide-provider";
    case Mode::portal:
      return "portal";
    case Mode::anchor_proxy:
      return "anchor-proxy";
    case Mode::agent:
      return "agent";
  }
  return "all-in-one";
}

std::string valid_mode_names() {
  return "all-in-one, coordinator, inference, control-plane, ide-provider, portal, "
         "anchor-proxy, agent (alias worker)";
}

std::string_view service_name(Service service) {
  switch (service) {
    case Service::coordinator:
      return "coordinator";
    case Service::inference:
      return "inference";
    case Service::control_plane:
      return "control-plane";
    case Service::ide_provider:
      return "ide-provider";
    case Service::portal:
      return "portal";
    case Service::anchor_proxy:
      return "anchor-proxy";
  }
  return "coordinator";
}

std::vector<Service> services_for(Mode mode) {
  switch (mode) {
    case Mode::all_in_one:
      return {Service::coordinator, Service::inference, Service::control_plane};
    case Mode::coordinator:
      return {Service::coordinator};
    case Mode::inference:
      return {Service::inference};
    case Mode::control_plane:
      return {Service::control_plane};
    case Mode::ide_provider:
      return {Service::ide_provider};
    case Mode::portal:
      return {Service::portal};
    case Mode::anchor_proxy:
      return {Service::anchor_proxy};
    case Mode::agent:
      return {};
  }
  return {};
}

Result<Config> parse_config(Settings settings) {
  Config config;
  const std::string mode_text = settings.get_or("EDGE_RUNTIME_MODE", "all-in-one");
  const auto mode = parse_mode(mode_text);
  if (!mode) {
    return make_error(Errc::invalid_argument, "EDGE_RUNTIME_MODE: unknown mode '" + mode_text +
                                                  "'; valid modes: " + valid_mode_names());
  }
  config.mode = *mode;

  config.bind_address = settings.get_or("EDGECODER_BIND", "127.0.0.1");
  {
    unsigned char buf[sizeof(in6_addr)];
    if (::inet_pton(AF_INET, config.bind_address.c_str(), buf) != 1 &&
        ::inet_pton(AF_INET6, config.bind_address.c_str(), buf) != 1) {
      return make_error(Errc::invalid_argument,
                        "EDGECODER_BIND: expected an IP address such as 127.0.0.1, 0.0.0.0 or "
                        "::, got '" +
                            config.bind_address + "'");
    }
  }

  // Every service's port, not only this mode's: an all-in-one node or an agent needs to know
  // where its peers listen. Port 0 (an ephemeral port) is for tests.
  static constexpr std::array<std::pair<Service, std::string_view>, 6> kPorts = {{
      {Service::coordinator, "COORDINATOR_PORT"},
      {Service::inference, "INFERENCE_PORT"},
      {Service::control_plane, "CONTROL_PLANE_PORT"},
      {Service::ide_provider, "IDE_PROVIDER_PORT"},
      {Service::portal, "PORTAL_PORT"},
      {Service::anchor_proxy, "ANCHOR_PROXY_PORT"},
  }};
  for (const auto& [service, name] : kPorts) {
    auto port = config_port(settings, name);
    if (!port) return port.error();
    config.ports[service] = static_cast<std::uint16_t>(*port);
  }

  const auto data_dir = settings.get("EDGECODER_DATA_DIR");
  config.data_dir = data_dir ? std::filesystem::path(*data_dir) : fs::default_data_dir();

  const std::string level_text = settings.get_or("EDGECODER_LOG_LEVEL", "info");
  auto level = log::parse_level(level_text);
  if (!level) {
    return make_error(Errc::invalid_argument, "EDGECODER_LOG_LEVEL: " + level.error().detail);
  }
  config.log_level = std::string(log::level_name(*level));

  auto insecure = settings.get_bool("EDGECODER_INSECURE_DEV");
  if (!insecure) return insecure.error();
  config.insecure_dev = *insecure;

  const auto cert = settings.get("TLS_CERT_FILE");
  const auto key = settings.get("TLS_KEY_FILE");
  if (cert && !key) {
    return make_error(Errc::invalid_argument, "TLS_CERT_FILE is set but TLS_KEY_FILE is not");
  }
  if (key && !cert) {
    return make_error(Errc::invalid_argument, "TLS_KEY_FILE is set but TLS_CERT_FILE is not");
  }
  if (cert && key) {
    if (auto ok = config_check_readable("TLS_CERT_FILE", *cert); !ok) return ok.error();
    if (auto ok = config_check_readable("TLS_KEY_FILE", *key); !ok) return ok.error();
    config.tls_cert_file = *cert;
    config.tls_key_file = *key;
  }

  auto body = settings.get_int("EDGECODER_MAX_BODY_BYTES", 1, std::int64_t{1} << 32);
  if (!body) return body.error();
  config.limits.max_body_bytes = static_cast<std::size_t>(*body);
  auto header_timeout = config_ms(settings, "EDGECODER_HEADER_TIMEOUT_MS", 1);
  if (!header_timeout) return header_timeout.error();
  config.limits.header_timeout = *header_timeout;
  auto body_timeout = config_ms(settings, "EDGECODER_BODY_TIMEOUT_MS", 1);
  if (!body_timeout) return body_timeout.error();
  config.limits.body_timeout = *body_timeout;
  auto idle_timeout = config_ms(settings, "EDGECODER_IDLE_TIMEOUT_MS", 1);
  if (!idle_timeout) return idle_timeout.error();
  config.limits.idle_timeout = *idle_timeout;
  auto connections = settings.get_int("EDGECODER_MAX_CONNECTIONS", 1, 1'000'000);
  if (!connections) return connections.error();
  config.limits.max_connections = static_cast<std::size_t>(*connections);
  auto drain = config_ms(settings, "EDGECODER_DRAIN_TIMEOUT_MS", 0);
  if (!drain) return drain.error();
  config.drain_timeout = *drain;
  auto threads = settings.get_int("EDGECODER_THREADS", 0, 64);
  if (!threads) return threads.error();
  config.threads = static_cast<int>(*threads);
  if (auto model = config_check_model_settings(settings); !model) return model.error();

  config.settings = std::move(settings);
  return config;
}

bool runs_embedded_agent(const Config& config) {
  if (config.mode != Mode::all_in_one) return false;
  auto disabled = config.settings.get_bool("DISABLE_SELF_AGENT");
  return !(disabled && *disabled);
}

std::vector<std::string_view> required_secrets(Mode mode) {
  switch (mode) {
    case Mode::all_in_one:
    case Mode::coordinator:
      return {"MESH_AUTH_TOKEN", "ADMIN_API_TOKEN", "INFERENCE_AUTH_TOKEN"};
    case Mode::inference:
      return {"INFERENCE_AUTH_TOKEN"};
    case Mode::control_plane:
      return {"ADMIN_API_TOKEN"};
    case Mode::agent:
      return {"MESH_AUTH_TOKEN"};
    case Mode::ide_provider:
    case Mode::portal:
    case Mode::anchor_proxy:
      return {};
  }
  return {};
}

}  // namespace edgecoder::core
