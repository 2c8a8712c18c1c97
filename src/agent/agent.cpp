#include "agent/agent.h"

#include <sys/utsname.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "agent/execute.h"
#include "agent/identity.h"
#include "agent/power.h"
#include "api/coordinator.h"
#include "api/envelope.h"
#include "core/fs.h"
#include "core/log.h"
#include "model/extract.h"
#include "model/prompts.h"
#include "model/provider.h"
#include "net/client.h"
#include "sandbox/sandbox.h"
#include "store/agent_outbox.h"

namespace edgecoder::agent {

namespace asio = boost::asio;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kOutboxFile = "agent-outbox.db";
// The model an operator's rollout switched this agent to (empty file or none: the configured one).
constexpr std::string_view kModelFile = "agent-model";
constexpr std::size_t kOutboxBatch = 50;
// POST /escalate waits for a larger model through the coordinator (its own wait for the
// inference service is COORDINATOR_ESCALATE_TIMEOUT_MS, 150 s by default).
constexpr auto kEscalateTimeout = std::chrono::seconds(200);

std::string host_os() {
  struct utsname u {};
  if (::uname(&u) != 0) return "linux";
  return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

// What one subtask produced, as /result reports it.
struct Outcome {
  bool ok = false;
  std::string output;
  std::string error;
};

// The coordinator's answer; status 0 = no answer (connection failure or timeout).
struct Reply {
  int status = 0;
  json body;
  std::string detail;
  std::string error_code() const {
    return body.is_object() && body.contains("error") && body["error"].is_string()
               ? body["error"].get<std::string>()
               : std::string();
  }
  bool unreachable() const { return status == 0 || status >= 500; }
};

// A field of a coordinator answer, or `fallback` when it is missing or of another type (an
// odd answer must not end a loop).
template <typename T>
T field(const json& j, const char* key, T fallback) {
  try {
    if (j.is_object()) return j.value(key, fallback);
  } catch (const json::exception&) {
  }
  return fallback;
}
std::string field(const json& j, const char* key, const char* fallback) {
  return field<std::string>(j, key, std::string(fallback));
}

// A coordinator base URL as the agent uses it: trimmed, without trailing '/'; "" when it is
// not http(s).
std::string normalise_url(std::string url) {
  url.erase(0, std::min(url.size(), url.find_first_not_of(" \t")));
  while (!url.empty() && (url.back() == '/' || url.back() == ' ' || url.back() == '\t')) {
    url.pop_back();
  }
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) return "";
  if (url.size() > 2048 || url.find_first_of(" \r\n\t") != std::string::npos) return "";
  return url;
}

}  // namespace

std::vector<std::string> parse_discovered_coordinators(const std::string& body) {
  std::vector<std::string> out;
  const json doc = json::parse(body, nullptr, false);
  if (!doc.is_object() || !doc.contains("coordinators") || !doc["coordinators"].is_array()) {
    return out;
  }
  for (const auto& c : doc["coordinators"]) {
    if (out.size() >= 64) break;
    std::string url;
    if (c.is_object() && c.contains("coordinatorUrl") && c["coordinatorUrl"].is_string()) {
      url = normalise_url(c["coordinatorUrl"].get<std::string>());
    }
    if (!url.empty() && std::find(out.begin(), out.end(), url) == out.end()) out.push_back(url);
  }
  return out;
}

core::Result<AgentOptions> agent_options_from(const core::Config& config) {
  const auto& s = config.settings;
  AgentOptions o;
  std::string list = s.get_or("COORDINATOR_URL", "");
  std::size_t pos = 0;
  while (pos <= list.size()) {
    auto comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string url = list.substr(pos, comma - pos);
    pos = comma + 1;
    url.erase(0, std::min(url.size(), url.find_first_not_of(" \t")));
    while (!url.empty() && (url.back() == '/' || url.back() == ' ' || url.back() == '\t')) {
      url.pop_back();
    }
    if (url.empty()) continue;
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
      return core::make_error(core::Errc::invalid_argument,
                              "COORDINATOR_URL: '" + url + "' must start with http:// or https://");
    }
    o.coordinator_urls.push_back(std::move(url));
  }
  if (o.coordinator_urls.empty()) {
    o.coordinator_urls.push_back("http://127.0.0.1:" +
                                 std::to_string(config.ports.at(core::Service::coordinator)));
  }
  o.mesh_token = s.get_or("MESH_AUTH_TOKEN", "");
  o.registration_token = s.get_or("AGENT_REGISTRATION_TOKEN", "");
  o.agent_id = s.get_or("AGENT_ID", "");
  auto hb = s.get_int("AGENT_HEARTBEAT_MS", 100, 3'600'000);
  if (!hb) return hb.error();
  o.heartbeat_interval = std::chrono::milliseconds(*hb);
  auto poll = s.get_int("AGENT_POLL_MS", 50, 600'000);
  if (!poll) return poll.error();
  o.poll_interval = std::chrono::milliseconds(*poll);
  auto max = s.get_int("MAX_CONCURRENT_TASKS", 1, 64);
  if (!max) return max.error();
  o.max_concurrent_tasks = static_cast<int>(*max);
  o.discovery_url = s.get_or("COORDINATOR_DISCOVERY_URL", "");
  if (!o.discovery_url.empty() && normalise_url(o.discovery_url).empty()) {
    return core::make_error(
        core::Errc::invalid_argument,
        "COORDINATOR_DISCOVERY_URL: '" + o.discovery_url + "' must start with http:// or https://");
  }
  auto discovery_ms = s.get_int("COORDINATOR_DISCOVERY_MS", 1'000, 86'400'000);
  if (!discovery_ms) return discovery_ms.error();
  o.discovery_interval = std::chrono::milliseconds(*discovery_ms);
  auto cpu_usage = s.get_bool("AGENT_REPORT_CPU_USAGE");
  if (!cpu_usage) return cpu_usage.error();
  o.report_cpu_usage = *cpu_usage;
  o.device_type = s.get_or("AGENT_DEVICE_TYPE", "");
  if (!o.device_type.empty() && o.device_type != "desktop" && o.device_type != "laptop" &&
      o.device_type != "server") {
    return core::make_error(core::Errc::invalid_argument,
                            "AGENT_DEVICE_TYPE: '" + o.device_type +
                                "' must be desktop, laptop or server (or empty to detect)");
  }
  auto iterations = s.get_int("AGENT_MAX_ITERATIONS", 1, 10);
  if (!iterations) return iterations.error();
  o.max_iterations = static_cast<int>(*iterations);
  auto escalate = s.get_bool("AGENT_ESCALATE");
  if (!escalate) return escalate.error();
  o.escalate = *escalate;
  o.data_dir = config.data_dir;
  o.version = EDGECODER_VERSION;
  return o;
}

struct Agent::Impl {
  // ---- constant after create() ----
  AgentOptions options;
  asio::any_io_executor executor;
  Identity identity;
  std::unique_ptr<store::AgentOutbox> outbox;
  std::unique_ptr<model::Provider> provider;
  std::unique_ptr<sandbox::Sandbox> sandbox;  // null = no work (why: sandbox_problem)
  std::string sandbox_mode;                   // reported at registration
  std::string sandbox_problem;
  std::vector<std::string> languages;  // empty when no work is taken
  std::unique_ptr<net::HttpClient> client;

  // ---- executor thread only ----
  struct Lease {
    int attempt = 0;
    bool released = false;     // handed back at stop: the result is dropped
    std::string envelope_key;  // the lease came as an envelope: the result is sealed with it
  };
  std::map<std::string, Lease> leases;  // subtask id -> lease
  std::string mesh_token;
  bool started = false;
  bool stopping = false;
  bool registered = false;
  bool registering = false;
  bool flushing = false;
  std::vector<std::string> urls;        // COORDINATOR_URL's, then the discovered ones
  std::size_t current_url = 0;          // index into urls
  std::uint64_t heartbeats_ok = 0;      // successful heartbeats so far (wakes a backed-off pull)
  int active = 0;                       // subtasks being solved
  std::string active_model;             // what it generates with (a rollout may switch it)
  bool switching = false;               // a model switch is under way
  int running = 0;                      // coroutines of this agent not yet ended
  std::set<std::string> direct_offers;  // peer-direct offers accepted, result not yet posted
  std::chrono::steady_clock::time_point mesh_peer_due{};  // next /mesh/register-peer refresh
  std::mt19937_64 rng{std::random_device{}()};

  // ---- sandbox threads; guarded by threads_mutex ----
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex threads_mutex;
  std::list<Worker> threads;

  ~Impl() { join_threads(false); }

  void join_threads(bool only_done) {
    std::list<Worker> to_join;
    {
      std::lock_guard lock(threads_mutex);
      for (auto it = threads.begin(); it != threads.end();) {
        if (!only_done || it->done->load()) {
          to_join.splice(to_join.end(), threads, it++);
        } else {
          ++it;
        }
      }
    }
    for (auto& w : to_join) {
      if (w.thread.joinable()) w.thread.join();
    }
  }

  template <typename Awaitable>
  void spawn(Awaitable a, std::string_view what) {
    ++running;
    asio::co_spawn(executor, std::move(a), [this, what](std::exception_ptr e) {
      --running;
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          core::log::error("agent", "loop_failed", {{"loop", what}, {"detail", ex.what()}});
        }
      }
    });
  }

  std::chrono::milliseconds backoff(int failures) {
    const auto base = options.backoff_initial.count();
    const auto cap = options.backoff_max.count();
    std::int64_t d = base;
    for (int i = 0; i < failures && d < cap; ++i) d *= 2;
    d = std::min<std::int64_t>(d, cap);
    // "Equal jitter": between half the delay and the whole delay.
    std::uniform_int_distribution<std::int64_t> dist(d / 2, d);
    return std::chrono::milliseconds(dist(rng));
  }

  // Sleeps `d`, returning early once the agent is stopping or `wake_if` says so.
  asio::awaitable<void> sleep(std::chrono::milliseconds d,
                              std::function<bool()> wake_if = nullptr) {
    asio::steady_timer timer(executor);
    const auto until = std::chrono::steady_clock::now() + d;
    while (!stopping && std::chrono::steady_clock::now() < until && !(wake_if && wake_if())) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      timer.expires_after(std::min<std::chrono::milliseconds>(left, 100ms));
      co_await timer.async_wait(asio::use_awaitable);
    }
  }

  asio::awaitable<Reply> post(std::string path, json body, std::chrono::milliseconds total = 30s) {
    net::ClientRequest req;
    req.method = "POST";
    const std::size_t used = current_url;
    const std::string base = urls[used];
    req.url = base + path;
    req.headers = {{"content-type", "application/json"}};
    if (!mesh_token.empty()) req.headers.push_back({"x-mesh-token", mesh_token});
    req.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    if (api::is_signed_agent_route(path)) {
      // Signed over exactly the bytes sent, with a fresh nonce on every attempt.
      const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      auto signed_headers = api::sign_agent_request(identity.agent_id, identity.ed25519.secret_key,
                                                    req.method, path, req.body, now_ms);
      if (signed_headers) {
        for (auto& h : *signed_headers) req.headers.push_back(std::move(h));
      } else {
        core::log::error("agent", "request_not_signed",
                         {{"route", path}, {"detail", signed_headers.error().detail}});
      }
    }
    req.total_timeout = total;
    req.first_byte_timeout = total;
    auto resp = co_await client->request(std::move(req));
    Reply reply;
    if (!resp) {
      reply.detail = resp.error().detail;
      // Fail over: the next call goes to the next coordinator of the list (which answers
      // 401 mesh_unauthorized until the agent has registered there).
      // (The list may have changed meanwhile: compare by URL.)
      if (urls.size() > 1 && current_url < urls.size() && urls[current_url] == base) {
        current_url = (current_url + 1) % urls.size();
        registered = false;
        core::log::warn("agent", "coordinator_failover",
                        {{"from", base}, {"to", urls[current_url]}, {"detail", reply.detail}});
      }
      co_return reply;
    }
    reply.status = resp->status;
    reply.body = json::parse(resp->body, nullptr, false);
    if (reply.body.is_discarded()) reply.body = json::object();
    co_return reply;
  }

  // Read afresh for every /register and /heartbeat (a few small files).
  json power_telemetry() const {
    PowerRoots roots;
    roots.sys = options.sys_root;
    roots.proc = options.proc_root;
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return power_telemetry_json(read_power_telemetry(roots, options.device_type), now,
                                options.report_cpu_usage);
  }

  json register_body() const {
    json b = {{"agentId", identity.agent_id},
              {"os", host_os()},
              {"version", options.version},
              {"mode", "swarm-only"},
              {"localModelProvider", std::string(model::provider_kind_name(provider->kind()))},
              {"clientType", "edgecoder-native"},
              {"maxConcurrentTasks", options.max_concurrent_tasks},
              {"publicKeyPem", identity.public_key_pem()},
              {"x25519PublicKey", identity.x25519_public_key()},
              {"sandboxMode", sandbox_mode},
              {"activeModel", active_model},
              {"languages", languages}};
    if (!options.registration_token.empty()) b["registrationToken"] = options.registration_token;
    b["powerTelemetry"] = power_telemetry();
    return b;
  }

  // Registers unless registered; returns once registered or stopping. One registration at a time.
  asio::awaitable<void> ensure_registered() {
    while (registering && !stopping) co_await sleep(100ms);
    if (registered || stopping) co_return;
    registering = true;
    int failures = 0;
    while (!stopping) {
      auto r = co_await post(std::string("/register"), register_body());
      if (r.status == 200 && field(r.body, "accepted", false)) {
        if (r.body.contains("meshToken") && r.body["meshToken"].is_string()) {
          mesh_token = r.body["meshToken"].get<std::string>();
        }
        registered = true;
        core::log::info("agent", "registered",
                        {{"agent_id", identity.agent_id},
                         {"coordinator", urls[current_url]},
                         {"sandbox_mode", sandbox_mode},
                         {"languages", json(languages).dump()},
                         {"public_key_fingerprint", identity.fingerprint()}});
        break;
      }
      const auto wait = backoff(failures++);
      if (r.status == 0) {
        core::log::warn("agent", "coordinator_unreachable",
                        {{"route", "/register"}, {"detail", r.detail}, {"retry_ms", wait.count()}});
      } else if (r.status == 200) {
        core::log::info("agent", "registration_pending",
                        {{"approval", field(r.body, "approval", "")},
                         {"reason", field(r.body, "reason", "")},
                         {"retry_ms", wait.count()}});
      } else {
        core::log::warn(
            "agent", "registration_refused",
            {{"status", r.status}, {"error", r.error_code()}, {"retry_ms", wait.count()}});
      }
      co_await sleep(wait);
    }
    registering = false;
  }

  // Handles a 401 mesh_unauthorized from any route: register again.
  asio::awaitable<bool> reregister_if_unauthorized(const Reply& r) {
    if (r.status != 401 || r.error_code() != "mesh_unauthorized") co_return false;
    core::log::info("agent", "reregistering", {{"reason", field(r.body, "reason", "")}});
    registered = false;
    co_await ensure_registered();
    co_return true;
  }

  // COORDINATOR_DISCOVERY_URL: fetch the registry now and every discovery_interval; its
  // coordinators follow COORDINATOR_URL's in the failover list. A registry that does not answer
  // or answers nonsense is logged and changes nothing.
  asio::awaitable<void> discovery_loop() {
    std::string last_error;
    while (!stopping) {
      net::ClientRequest req;
      req.method = "GET";
      req.url = options.discovery_url;
      req.total_timeout = 8s;
      req.first_byte_timeout = 8s;
      auto call = client->request(std::move(req));
      auto fetched = co_await std::move(call);
      std::string error;
      std::vector<std::string> found;
      if (!fetched) {
        error = fetched.error().detail;
      } else if (fetched->status != 200) {
        error = "status " + std::to_string(fetched->status);
      } else {
        found = parse_discovered_coordinators(fetched->body);
        if (found.empty()) error = "no coordinators[].coordinatorUrl in the answer";
      }
      if (!error.empty()) {
        // Once per distinct problem, not every round.
        if (error != last_error) {
          core::log::warn(
              "agent", "coordinator_discovery_failed",
              {{"url", options.discovery_url}, {"detail", error}, {"coordinators", urls.size()}});
        }
        last_error = error;
      } else {
        last_error.clear();
        merge_discovered(found);
      }
      co_await sleep(options.discovery_interval);
    }
  }

  void merge_discovered(const std::vector<std::string>& found) {
    std::vector<std::string> merged = options.coordinator_urls;
    for (const auto& url : found) {
      if (std::find(merged.begin(), merged.end(), url) == merged.end()) merged.push_back(url);
    }
    if (merged == urls) return;
    const std::string current = urls[current_url];
    const auto at = std::find(merged.begin(), merged.end(), current);
    urls = std::move(merged);
    if (at == urls.end()) {
      // The coordinator in use left the registry: start over at the head of the list.
      current_url = 0;
      registered = false;
    } else {
      current_url = static_cast<std::size_t>(at - urls.begin());
    }
    core::log::info("agent", "coordinators_discovered",
                    {{"url", options.discovery_url},
                     {"coordinators", json(urls).dump()},
                     {"current", urls[current_url]}});
  }

  asio::awaitable<void> main_loop() {
    co_await ensure_registered();
    if (stopping) co_return;
    co_await register_mesh_peer();
    spawn(heartbeat_loop(), "heartbeat");
    co_await flush_outbox();
    if (sandbox) spawn(pull_loop(), "pull");
  }

  asio::awaitable<void> heartbeat_loop() {
    while (!stopping) {
      co_await sleep(options.heartbeat_interval);
      if (stopping) break;
      json beat = {{"agentId", identity.agent_id},
                   {"sandboxMode", sandbox_mode},
                   {"activeModel", active_model},
                   {"modelSwapInProgress", switching},
                   {"powerTelemetry", power_telemetry()}};
      auto r = co_await post(std::string("/heartbeat"), std::move(beat), 10s);
      if (r.status == 200) {
        ++heartbeats_ok;
        const json& orchestration =
            r.body.contains("orchestration") ? r.body["orchestration"] : json();
        if (!switching && orchestration.is_object() && field(orchestration, "pending", false)) {
          switching = true;
          spawn(switch_model(field(orchestration, "rolloutId", std::string()),
                             field(orchestration, "model", std::string())),
                "model_switch");
        }
        co_await handle_agent_mesh(r.body);
        if (std::chrono::steady_clock::now() >= mesh_peer_due) co_await register_mesh_peer();
        co_await flush_outbox();
      } else if (co_await reregister_if_unauthorized(r)) {
        co_await flush_outbox();
      } else if (r.status == 0) {
        core::log::debug("agent", "heartbeat_failed", {{"detail", r.detail}});
      } else if (r.status != 403) {
        core::log::warn("agent", "heartbeat_refused",
                        {{"status", r.status}, {"error", r.error_code()}});
      }
    }
  }

  // A model switch asked by an operator's rollout (delivered in the heartbeat): pull the model,
  // make it the one this agent generates with, probe it with one generation, and report each
  // step. A model that fails its probe is not kept: the previous one stays in use.
  asio::awaitable<void> switch_model(std::string rollout_id, std::string model) {
    const std::string path = "/orchestration/agents/" + identity.agent_id;
    core::log::info("agent", "model_switch", {{"rollout", rollout_id}, {"model", model}});
    std::string error;
    if (model != active_model) {  // a model already in use is not downloaded again
      auto step = report_switch(rollout_id, "downloading", "pulling " + model);
      co_await std::move(step);
      auto pulled = co_await pull_model(model);
      if (!pulled) error = "pull: " + pulled.error().detail;
    }
    const std::string previous = active_model;
    if (error.empty()) {
      set_active_model(model);
      auto step = report_switch(rollout_id, "applied", model + " is now the active model");
      co_await std::move(step);
      model::GenerateRequest probe;
      probe.model = model;
      probe.prompt = "Reply with the single word: ready";
      probe.sampling.max_tokens = 8;
      auto stream = co_await provider->generate(std::move(probe));
      if (!stream) {
        error = "probe: " + stream.error().detail;
      } else {
        auto text = co_await model::collect(std::move(*stream));
        if (!text) error = "probe: " + text.error().detail;
      }
      if (!error.empty()) set_active_model(previous);
    }
    json ack = {{"rolloutId", rollout_id}, {"ok", error.empty()}};
    if (!error.empty()) ack["error"] = error.substr(0, 500);
    for (int attempt = 0; attempt < 4 && !stopping; ++attempt) {
      auto r = co_await post(path + "/ack", ack, 20s);
      if (r.status == 200 || r.status == 404 || r.status == 409) break;
      co_await sleep(backoff(attempt));
    }
    core::log::info("agent", error.empty() ? "model_switched" : "model_switch_failed",
                    {{"rollout", rollout_id},
                     {"model", model},
                     {"active_model", active_model},
                     {"detail", error}});
    switching = false;
  }

  asio::awaitable<void> report_switch(std::string rollout_id, std::string phase,
                                      std::string message) {
    json body = {{"rolloutId", rollout_id}, {"phase", phase}, {"message", message}};
    auto r = co_await post("/orchestration/agents/" + identity.agent_id + "/status",
                           std::move(body), 20s);
    if (r.status != 200) {
      core::log::warn("agent", "model_switch_report_failed",
                      {{"phase", phase}, {"status", r.status}, {"error", r.error_code()}});
    }
  }

  asio::awaitable<core::Result<void>> pull_model(std::string model) {
    auto stream = co_await provider->pull(std::move(model));
    if (!stream) co_return stream.error();
    while (true) {
      auto update = co_await (*stream)->next();
      if (!update) co_return update.error();
      if (!*update) co_return core::Result<void>{};
    }
  }

  void set_active_model(const std::string& model) {
    active_model = model;
    auto saved = core::fs::write_private_file(options.data_dir / std::string(kModelFile), model);
    if (!saved) {
      core::log::warn("agent", "model_not_saved", {{"detail", saved.error().detail}});
    }
  }

  asio::awaitable<void> pull_loop() {
    int failures = 0;
    while (!stopping) {
      if (active >= options.max_concurrent_tasks) {
        co_await sleep(50ms);
        continue;
      }
      json ask = {{"agentId", identity.agent_id}};
      auto r = co_await post(std::string("/pull"), std::move(ask), 15s);
      const bool sealed =
          r.status == 200 && r.body.contains("envelope") && r.body["envelope"].is_object();
      if (sealed ||
          (r.status == 200 && r.body.contains("subtask") && r.body["subtask"].is_object())) {
        failures = 0;
        api::WireSubtask sub;
        std::string envelope_key;
        if (sealed) {
          auto opened = api::open_task(r.body["envelope"], identity.x25519.secret_key);
          if (opened) {
            sub = std::move(opened->subtask);
            envelope_key = std::move(opened->key);
          } else {
            // Not for this key (or damaged): hand the lease back so another agent can run it.
            const std::string id = field(r.body["envelope"], "subtaskId", "");
            core::log::warn("agent", "envelope_unreadable",
                            {{"subtask_id", id}, {"detail", opened.error().detail}});
            if (!id.empty()) {
              leases[id] = Lease{field(r.body["envelope"], "attempt", 0), false, ""};
              co_await release(id);
              leases.erase(id);
            }
          }
        } else {
          try {
            sub = api::wire_subtask_from_json(r.body["subtask"]);
          } catch (const json::exception& e) {
            core::log::warn("agent", "bad_subtask", {{"detail", e.what()}});
          }
        }
        if (sub.id.empty()) {
          co_await sleep(backoff(failures++));
          continue;
        }
        const bool encrypted = !envelope_key.empty();
        leases[sub.id] = Lease{sub.attempt, false, std::move(envelope_key)};
        if (stopping) {
          co_await release(sub.id);
          break;
        }
        ++active;
        core::log::info("agent", "subtask_leased",
                        {{"subtask_id", sub.id},
                         {"task_id", sub.task_id},
                         {"attempt", sub.attempt},
                         {"language", sub.language},
                         {"envelope", encrypted}});
        spawn(run_subtask(std::move(sub)), "subtask");
        continue;
      }
      if (stopping) break;
      if (r.status == 200) {
        failures = 0;
        std::int64_t defer = field(r.body, "deferMs", std::int64_t{0});
        co_await sleep(defer > 0 ? std::chrono::milliseconds(defer) : options.poll_interval);
      } else if (co_await reregister_if_unauthorized(r)) {
        continue;
      } else if (r.status == 429) {
        // Over the coordinator's per-agent rate limit: wait as long as it says.
        const std::int64_t retry = field(r.body, "retryAfterMs", std::int64_t{1'000});
        core::log::warn("agent", "rate_limited", {{"route", "/pull"}, {"retry_ms", retry}});
        const auto wait = std::chrono::milliseconds(std::clamp<std::int64_t>(retry, 100, 600'000));
        co_await sleep(wait);
      } else {
        const auto wait = backoff(failures++);
        if (r.status == 0) {
          core::log::warn("agent", "coordinator_unreachable",
                          {{"route", "/pull"}, {"detail", r.detail}, {"retry_ms", wait.count()}});
        } else if (r.status != 403) {
          core::log::warn("agent", "pull_refused",
                          {{"status", r.status}, {"error", r.error_code()}});
        }
        // A heartbeat that gets through means the coordinator is back: pull again at once.
        const auto seen = heartbeats_ok;
        co_await sleep(wait, [this, seen] { return heartbeats_ok != seen; });
        if (heartbeats_ok != seen) failures = 0;
      }
    }
  }

  // Runs the sandbox on a thread of its own (a run blocks its thread until every process it
  // started is gone) and resumes the coroutine on the executor.
  // What a sandbox thread hands back to the coroutine waiting for it.
  struct SandboxCall {
    sandbox::RunRequest request;
    Outcome outcome;
    asio::steady_timer* wake = nullptr;  // executor thread only
  };

  static Outcome run_one(const sandbox::Sandbox& sb, const sandbox::RunRequest& request) {
    Outcome out;
    auto run = sb.run(request);
    if (!run) {
      out.error = "sandbox: " + run.error().detail;
      return out;
    }
    out.ok = run->ok();
    out.output = run->stdout_text;
    out.error = run->stderr_text;
    if (!run->error.empty()) {
      if (!out.error.empty() && out.error.back() != '\n') out.error += '\n';
      out.error += "sandbox: " + run->error;
    }
    if (!out.ok && out.error.empty()) out.error = "exit code " + std::to_string(run->exit_code);
    return out;
  }

  // Runs the sandbox on a thread of its own (a run blocks its thread until every process it
  // started is gone) and resumes on the executor when it is done.
  asio::awaitable<Outcome> run_sandboxed(std::shared_ptr<SandboxCall> call) {
    join_threads(true);
    asio::steady_timer wake(executor, asio::steady_timer::time_point::max());
    call->wake = &wake;
    auto done = std::make_shared<std::atomic<bool>>(false);
    {
      std::lock_guard lock(threads_mutex);
      threads.push_back({std::thread([this, call, done] {
                           call->outcome = run_one(*sandbox, call->request);
                           asio::post(executor, [call] {
                             if (call->wake) call->wake->cancel();
                           });
                           done->store(true);
                         }),
                         done});
    }
    boost::system::error_code ec;
    co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    call->wake = nullptr;
    co_return std::move(call->outcome);
  }

  static Execution failed_execution(std::string error) {
    Execution e;
    e.error = std::move(error);
    return e;
  }

  asio::awaitable<RunOutcome> run_code(sandbox::Language language, std::string code) {
    auto call = std::make_shared<SandboxCall>();
    call->request.language = language;
    call->request.code = std::move(code);
    call->request.require_isolation = true;
    auto run = run_sandboxed(call);
    Outcome o = co_await std::move(run);
    co_return RunOutcome{o.ok, std::move(o.output), std::move(o.error)};
  }

  // POST /escalate on the coordinator; the improved code, or why there is none.
  asio::awaitable<core::Result<std::string>> escalate(api::EscalateRequest request) {
    json body = {{"taskId", request.task_id},
                 {"agentId", request.agent_id},
                 {"task", request.task},
                 {"failedCode", request.failed_code},
                 {"errorHistory", request.error_history},
                 {"language", request.language},
                 {"iterationsAttempted", request.iterations_attempted}};
    auto call = post(std::string("/escalate"), std::move(body), kEscalateTimeout);
    Reply r = co_await std::move(call);
    if (r.status == 200 && r.body.is_object() && r.body.contains("improvedCode") &&
        r.body["improvedCode"].is_string() &&
        !r.body["improvedCode"].get_ref<const std::string&>().empty()) {
      co_return r.body["improvedCode"].get<std::string>();
    }
    std::string why = r.status == 0 ? "coordinator unreachable: " + r.detail
                                    : "HTTP " + std::to_string(r.status) + " " + r.error_code();
    const std::string detail = field(r.body, "detail", "");
    if (!detail.empty()) why += ": " + detail;
    co_return core::Error(core::Errc::unavailable, "escalation_failed", why);
  }

  asio::awaitable<Execution> solve(api::WireSubtask sub) {
    auto language = sandbox::parse_language(sub.language);
    if (!language) co_return failed_execution("unsupported_language: " + sub.language);
    const std::string lang(sandbox::language_name(*language));
    if (std::find(languages.begin(), languages.end(), lang) == languages.end()) {
      co_return failed_execution("unsupported_language: " + lang + " is not available here");
    }
    ExecuteOptions eo;
    eo.model = sub.requested_model.empty() ? active_model : sub.requested_model;
    eo.max_iterations = options.max_iterations;
    eo.escalate = options.escalate;
    const sandbox::Language run_language = *language;
    RunCode run = [this, run_language](std::string code) {
      return run_code(run_language, std::move(code));
    };
    Escalate ask = [this](api::EscalateRequest request) { return escalate(std::move(request)); };
    auto call = execute(provider.get(), std::move(eo), std::move(sub), lang, identity.agent_id,
                        std::move(run), std::move(ask));
    co_return co_await std::move(call);
  }

  asio::awaitable<void> run_subtask(api::WireSubtask sub) {
    const auto start = std::chrono::steady_clock::now();
    auto solving = solve(sub);
    Execution out = co_await std::move(solving);
    --active;
    const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count();
    auto it = leases.find(sub.id);
    if (it == leases.end() || it->second.released) {
      core::log::info("agent", "result_dropped", {{"subtask_id", sub.id}, {"reason", "released"}});
      if (it != leases.end()) leases.erase(it);
      co_return;
    }
    json body = {{"subtaskId", sub.id},          {"taskId", sub.task_id},
                 {"agentId", identity.agent_id}, {"ok", out.ok},
                 {"output", out.output},         {"error", out.error},
                 {"durationMs", duration},       {"attempt", sub.attempt},
                 {"iterations", out.iterations}, {"escalated", out.escalated}};
    core::log::info("agent", "subtask_finished",
                    {{"subtask_id", sub.id},
                     {"ok", out.ok},
                     {"duration_ms", duration},
                     {"iterations", out.iterations},
                     {"escalated", out.escalated}});
    if (!it->second.envelope_key.empty()) {
      // It came as an envelope: the result goes back sealed with the lease's key.
      auto sealed = api::seal_result(body, it->second.envelope_key);
      if (sealed) {
        body = std::move(*sealed);
      } else {
        core::log::warn("agent", "result_not_sealed",
                        {{"subtask_id", sub.id}, {"detail", sealed.error().detail}});
      }
    }
    co_await deliver(sub.id, std::move(body));
    leases.erase(sub.id);
  }

  // Posts a result; keeps it in the outbox when the coordinator cannot take it now.
  asio::awaitable<void> deliver(std::string subtask_id, json body) {
    for (int tries = 0; tries < 2; ++tries) {
      auto r = co_await post(std::string("/result"), body);
      if (r.status == 200) co_return;
      if (r.unreachable() || r.status == 429) break;  // kept in the outbox, sent again later
      if (co_await reregister_if_unauthorized(r)) continue;
      core::log::warn(
          "agent", "result_rejected",
          {{"subtask_id", subtask_id}, {"status", r.status}, {"error", r.error_code()}});
      co_return;
    }
    if (auto a = outbox->add(subtask_id, body.dump(-1, ' ', false, json::error_handler_t::replace));
        !a) {
      core::log::error("agent", "outbox_write_failed",
                       {{"subtask_id", subtask_id}, {"detail", a.error().detail}});
      co_return;
    }
    core::log::warn("agent", "result_queued_in_outbox", {{"subtask_id", subtask_id}});
  }

  asio::awaitable<void> flush_outbox() {
    if (flushing) co_return;
    flushing = true;
    auto entries = outbox->list(kOutboxBatch);
    if (!entries) {
      core::log::error("agent", "outbox_read_failed", {{"detail", entries.error().detail}});
    } else {
      for (const auto& e : *entries) {
        if (stopping) break;
        auto body = json::parse(e.body, nullptr, false);
        Reply r;
        if (!body.is_discarded()) r = co_await post(std::string("/result"), body);
        if ((r.unreachable() || r.status == 429) && !body.is_discarded()) break;
        if (r.status == 401 && r.error_code() == "mesh_unauthorized") {
          registered = false;
          break;  // the heartbeat registers again; the entry stays
        }
        if (r.status == 200) {
          core::log::info("agent", "outbox_delivered", {{"subtask_id", e.subtask_id}});
        } else {
          core::log::warn(
              "agent", "outbox_result_rejected",
              {{"subtask_id", e.subtask_id}, {"status", r.status}, {"error", r.error_code()}});
        }
        if (auto rm = outbox->remove(e.id); !rm) {
          core::log::error("agent", "outbox_write_failed", {{"detail", rm.error().detail}});
          break;
        }
      }
    }
    flushing = false;
  }

  // ---- the agent mesh (upstream-coordinator.md §2.5, §4.2) ----

  asio::awaitable<Reply> get(std::string path, std::chrono::milliseconds total = 10s) {
    net::ClientRequest req;
    req.url = urls[current_url] + path;
    if (!mesh_token.empty()) req.headers.push_back({"x-mesh-token", mesh_token});
    req.total_timeout = total;
    req.first_byte_timeout = total;
    auto resp = co_await client->request(std::move(req));
    Reply reply;
    if (!resp) {
      reply.detail = resp.error().detail;
      co_return reply;
    }
    reply.status = resp->status;
    reply.body = json::parse(resp->body, nullptr, false);
    if (reply.body.is_discarded()) reply.body = json::object();
    co_return reply;
  }

  // Best effort: a coordinator that refuses (or predates /mesh/*) only costs a log line. With no
  // listening mesh port, the URL a peer is reached through is the coordinator it works with.
  asio::awaitable<void> register_mesh_peer() {
    mesh_peer_due = std::chrono::steady_clock::now() + 10min;
    auto identity_reply = co_await get(std::string("/identity"));
    json peer = {{"peerId", identity.agent_id},
                 {"publicKeyPem", identity.public_key_pem()},
                 {"coordinatorUrl", urls[current_url]},
                 {"networkMode", field(identity_reply.body, "networkMode", "public_mesh")},
                 {"role", "agent"}};
    auto r = co_await post(std::string("/mesh/register-peer"), std::move(peer), 10s);
    if (r.status == 200) {
      core::log::debug("agent", "mesh_peer_registered",
                       {{"peer_count", field(r.body, "peerCount", std::int64_t{0})}});
    } else {
      core::log::info("agent", "mesh_peer_not_registered",
                      {{"status", r.status}, {"error", r.error_code()}, {"detail", r.detail}});
    }
  }

  // What the heartbeat answer carries from the agent mesh. Tunnels are bookkeeping only (no
  // bytes travel through them): invites are accepted and close notices acknowledged so that the
  // coordinator's view stays tidy. Offers this agent can run are accepted and run.
  asio::awaitable<void> handle_agent_mesh(json beat) {
    const json notices = beat.contains("tunnelCloseNotices") ? beat["tunnelCloseNotices"] : json();
    const json invites = beat.contains("tunnelInvites") ? beat["tunnelInvites"] : json();
    const json offers = beat.contains("directWorkOffers") ? beat["directWorkOffers"] : json();
    if (notices.is_array()) {
      for (const auto& n : notices) {
        json ack = {{"agentId", identity.agent_id}, {"token", field(n, "token", "")}};
        co_await post(std::string("/agent-mesh/close-ack"), std::move(ack), 10s);
      }
    }
    if (invites.is_array()) {
      for (const auto& i : invites) {
        json accept = {{"agentId", identity.agent_id}, {"token", field(i, "token", "")}};
        co_await post(std::string("/agent-mesh/accept"), std::move(accept), 10s);
      }
    }
    const json power = beat.contains("powerPolicy") ? beat["powerPolicy"] : json();
    if (!offers.is_array() || offers.empty() || !field(power, "allowPeerDirectWork", true)) {
      co_return;
    }
    for (const auto& o : offers) {
      if (stopping || active >= options.max_concurrent_tasks) break;
      const std::string offer_id = field(o, "offerId", "");
      if (offer_id.empty() || direct_offers.count(offer_id)) continue;
      if (!can_run_offer(o)) continue;  // left to another agent or to expiry
      json accept = {{"offerId", offer_id}, {"byAgentId", identity.agent_id}};
      auto r = co_await post(std::string("/agent-mesh/direct-work/accept"), std::move(accept), 10s);
      if (r.status != 200 || !r.body.contains("offer") || !r.body["offer"].is_object()) {
        core::log::info("agent", "direct_work_not_accepted",
                        {{"offer", offer_id}, {"status", r.status}, {"error", r.error_code()}});
        continue;
      }
      ++active;
      direct_offers.insert(offer_id);
      core::log::info("agent", "direct_work_accepted",
                      {{"offer", offer_id}, {"from", field(o, "fromAgentId", "")}});
      spawn(run_direct_offer(r.body["offer"]), "direct_work");
    }
  }

  bool can_run_offer(const json& offer) const {
    if (field(offer, "workType", "code_task") == "model_inference") return true;
    if (!sandbox) return false;
    auto language = sandbox::parse_language(field(offer, "language", "python"));
    if (!language) return false;
    const std::string lang(sandbox::language_name(*language));
    return std::find(languages.begin(), languages.end(), lang) != languages.end();
  }

  asio::awaitable<void> run_direct_offer(json offer) {
    const auto start = std::chrono::steady_clock::now();
    const std::string offer_id = field(offer, "offerId", "");
    Outcome out;
    if (field(offer, "workType", "code_task") == "model_inference") {
      model::GenerateRequest gen;
      gen.model = active_model;
      gen.prompt = field(offer, "input", "");
      auto stream = co_await provider->generate(std::move(gen));
      if (!stream) {
        out.error = "model: " + stream.error().detail;
      } else {
        auto text = co_await model::collect(std::move(*stream));
        if (!text) {
          out.error = "model: " + text.error().detail;
        } else {
          out.ok = true;
          out.output = std::move(*text);
        }
      }
    } else {
      // The same path as a pulled subtask: model, then the sandbox.
      api::WireSubtask sub;
      sub.id = offer_id;
      sub.language = field(offer, "language", "python");
      sub.input = field(offer, "input", "");
      auto solving = solve(sub);
      Execution done = co_await std::move(solving);
      out.ok = done.ok;
      out.output = std::move(done.output);
      out.error = std::move(done.error);
    }
    --active;
    const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count();
    json body = {{"offerId", offer_id}, {"byAgentId", identity.agent_id},
                 {"ok", out.ok},        {"output", out.output},
                 {"error", out.error},  {"durationMs", duration}};
    int status = 0;
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto r = co_await post(std::string("/agent-mesh/direct-work/result"), body, 15s);
      status = r.status;
      if (!r.unreachable()) break;  // peer-direct results have no outbox: they earn nothing
      co_await sleep(backoff(attempt));
    }
    direct_offers.erase(offer_id);
    core::log::info(
        "agent", "direct_work_finished",
        {{"offer", offer_id}, {"ok", out.ok}, {"duration_ms", duration}, {"status", status}});
  }

  asio::awaitable<core::Result<std::string>> offer_direct_work(std::string to_agent,
                                                               std::string input,
                                                               std::string language,
                                                               std::string work_type) {
    json body = {{"fromAgentId", identity.agent_id},
                 {"toAgentId", to_agent},
                 {"workType", work_type},
                 {"language", language},
                 {"input", input}};
    auto r = co_await post(std::string("/agent-mesh/direct-work/offer"), std::move(body), 15s);
    if (r.status == 200 && r.body.contains("offerId") && r.body["offerId"].is_string()) {
      co_return r.body["offerId"].get<std::string>();
    }
    co_return mesh_reply_error(r, "/agent-mesh/direct-work/offer");
  }

  asio::awaitable<core::Result<json>> direct_work(std::string offer_id) {
    auto r = co_await get("/agent-mesh/direct-work/" + net::percent_encode(offer_id));
    if (r.status == 200) co_return r.body;
    co_return mesh_reply_error(r, "/agent-mesh/direct-work/" + offer_id);
  }

  static core::Error mesh_reply_error(const Reply& r, const std::string& route) {
    if (r.status == 0) {
      return core::Error(core::Errc::unavailable, "coordinator_unreachable",
                         route + ": " + r.detail);
    }
    const std::string code =
        r.error_code().empty() ? "http_" + std::to_string(r.status) : r.error_code();
    const core::Errc errc = r.status == 404   ? core::Errc::not_found
                            : r.status == 403 ? core::Errc::permission_denied
                            : r.status == 400 ? core::Errc::invalid_argument
                            : r.status == 409 ? core::Errc::conflict
                                              : core::Errc::unavailable;
    return core::Error(errc, code, route + " answered " + std::to_string(r.status) + " " + code);
  }

  asio::awaitable<void> release(std::string subtask_id) {
    auto it = leases.find(subtask_id);
    if (it == leases.end()) co_return;
    it->second.released = true;
    const int attempt = it->second.attempt;
    json body = {{"agentId", identity.agent_id},
                 {"subtaskId", subtask_id},
                 {"attempt", attempt},
                 {"reason", "agent_stopping"}};
    auto r = co_await post(std::string("/release"), std::move(body), 5s);
    core::log::info("agent", "lease_released",
                    {{"subtask_id", subtask_id}, {"attempt", attempt}, {"status", r.status}});
  }

  asio::awaitable<void> release_all() {
    std::vector<std::string> ids;
    for (const auto& [id, lease] : leases) {
      if (!lease.released) ids.push_back(id);
    }
    for (auto& id : ids) co_await release(id);
  }
};

Agent::Agent(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Agent::~Agent() { impl_->join_threads(false); }

const std::string& Agent::agent_id() const { return impl_->identity.agent_id; }

core::Result<std::unique_ptr<Agent>> Agent::create(const core::Config& config, AgentOptions options,
                                                   asio::any_io_executor executor) {
  auto impl = std::make_shared<Impl>();
  impl->executor = executor;
  auto identity =
      load_or_create_identity(options.data_dir / std::string(kIdentityFile), options.agent_id);
  if (!identity) return identity.error();
  impl->identity = std::move(*identity);
  auto outbox = store::AgentOutbox::open(options.data_dir / std::string(kOutboxFile));
  if (!outbox) return outbox.error();
  impl->outbox = std::move(*outbox);

  auto provider_config = model::provider_config_from(config.settings);
  if (!provider_config) return provider_config.error();
  auto provider = model::make_provider(std::move(*provider_config), executor);
  if (!provider) return provider.error();
  impl->provider = std::move(*provider);
  impl->active_model = impl->provider->config().model;
  if (auto saved = core::fs::read_file(options.data_dir / std::string(kModelFile));
      saved && !saved->empty()) {
    impl->active_model = *saved;  // a rollout switched it before this start
  }

  auto sandbox_options = sandbox::options_from_settings(config.settings, options.data_dir);
  if (!sandbox_options) return sandbox_options.error();
  impl->sandbox_mode = std::string(sandbox::mode_name(sandbox_options->mode));
  if (sandbox_options->mode == sandbox::Mode::none) {
    impl->sandbox_problem = "SANDBOX_MODE=none runs code without isolation";
    core::log::error("agent", "no_work_taken",
                     {{"reason", impl->sandbox_problem},
                      {"fix", "set SANDBOX_MODE=bwrap (or docker, or process)"}});
  } else {
    auto report = sandbox::probe(*sandbox_options);
    auto sb = sandbox::make_sandbox(*sandbox_options, report);
    if (!sb) {
      impl->sandbox_problem = report.problem.empty() ? sb.error().detail : report.problem;
      core::log::error("agent", "sandbox_unavailable",
                       {{"mode", impl->sandbox_mode},
                        {"problem", impl->sandbox_problem},
                        {"fix", report.fix},
                        {"detail", "this agent takes no work until the sandbox can be set up"}});
    } else {
      impl->sandbox = std::move(*sb);
      for (auto lang : report.languages) {
        impl->languages.emplace_back(sandbox::language_name(lang));
      }
      for (const auto& w : report.warnings) {
        core::log::warn("agent", "sandbox_warning", {{"mode", impl->sandbox_mode}, {"detail", w}});
      }
      if (impl->languages.empty()) {
        impl->sandbox_problem = "no interpreter ran in the sandbox";
        core::log::error("agent", "sandbox_unavailable",
                         {{"mode", impl->sandbox_mode}, {"problem", impl->sandbox_problem}});
        impl->sandbox.reset();
      }
    }
  }
  if (!impl->sandbox) {
    impl->sandbox_mode = "none";
    impl->languages.clear();
  }

  net::ClientOptions client_options;
  client_options.connect_timeout = 3s;
  client_options.first_byte_timeout = 30s;
  client_options.total_timeout = 60s;
  impl->client = std::make_unique<net::HttpClient>(executor, client_options);
  impl->mesh_token = options.mesh_token;
  impl->options = std::move(options);
  impl->urls = impl->options.coordinator_urls;
  core::log::info("agent", "identity",
                  {{"agent_id", impl->identity.agent_id},
                   {"public_key_fingerprint", impl->identity.fingerprint()},
                   {"coordinator", impl->options.coordinator_urls.front()},
                   {"coordinators", impl->options.coordinator_urls.size()},
                   {"discovery_url", impl->options.discovery_url},
                   {"sandbox_mode", impl->sandbox_mode},
                   {"max_concurrent_tasks", impl->options.max_concurrent_tasks}});
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

void Agent::start() {
  if (impl_->started) return;
  impl_->started = true;
  if (!impl_->options.discovery_url.empty()) impl_->spawn(impl_->discovery_loop(), "discovery");
  impl_->spawn(impl_->main_loop(), "main");
}

void Agent::stop() {
  if (impl_->stopping) return;
  impl_->stopping = true;
  core::log::info("agent", "stopping", {{"leases", impl_->leases.size()}});
  impl_->spawn(impl_->release_all(), "release");
  impl_->provider->release_connections();
}

bool Agent::stopped() const { return impl_->stopping && impl_->running == 0; }

asio::awaitable<core::Result<std::string>> Agent::offer_direct_work(std::string to_agent_id,
                                                                    std::string input,
                                                                    std::string language,
                                                                    std::string work_type) {
  auto call = impl_->offer_direct_work(std::move(to_agent_id), std::move(input),
                                       std::move(language), std::move(work_type));
  co_return co_await std::move(call);
}

asio::awaitable<core::Result<json>> Agent::direct_work(std::string offer_id) {
  auto call = impl_->direct_work(std::move(offer_id));
  co_return co_await std::move(call);
}

}  // namespace edgecoder::agent
