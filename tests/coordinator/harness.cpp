#include "coordinator/harness.h"

#include <gtest/gtest.h>

#include "coordinator/coordinator.h"
#include "core/config.h"
#include "net/router.h"
#include "support/child_process.h"

namespace edgecoder::coordinator::testing {

namespace {

net::Router fake_inference_router(std::shared_ptr<FakeInference> fake) {
  net::Router router;
  router.add_sync("POST", "/decompose", [fake](const net::Request& r) {
    fake->calls++;
    fake->last_body = r.body;
    auto token = r.header("x-inference-token");
    fake->last_token = token ? std::string(*token) : "";
    if (fake->last_token != kInference) {
      return net::Response::error(401, "inference_unauthorized", "bad token");
    }
    return net::Response::json(fake->status, fake->response);
  });
  router.add_sync("POST", "/escalate", [fake](const net::Request& r) {
    fake->escalate_calls++;
    fake->last_escalate_body = r.body;
    auto token = r.header("x-inference-token");
    fake->last_escalate_token = token ? std::string(*token) : "";
    if (fake->last_escalate_token != kInference) {
      return net::Response::error(401, "inference_unauthorized", "bad token");
    }
    return net::Response::json(fake->escalate_status, fake->escalate_response);
  });
  return router;
}

}  // namespace

bool pg_missing_should_skip(store::Backend backend) {
  if (backend != store::Backend::postgres || store::testing::pg_test_dsn()) return false;
  if (store::testing::pg_unavailable_is_failure()) {
    ADD_FAILURE() << "CI=true but EDGECODER_TEST_PG_DSN is not set";
  }
  return true;
}

Harness::Harness(HarnessOptions options)
    : clock_(options.reuse              ? options.reuse->clock
             : options.share_store_with ? options.share_store_with->clock_
                                        : std::make_shared<store::testing::TestClock>()),
      inference_(std::make_shared<FakeInference>()) {
  if (options.share_store_with &&
      options.share_store_with->home_->backend() != store::Backend::postgres) {
    throw std::runtime_error("share_store_with needs PostgreSQL");
  }
  // With a shared store this home only provides the data directory.
  home_ = options.reuse
              ? options.reuse->home
              : std::make_shared<store::testing::StoreHome>(
                    options.share_store_with ? store::Backend::sqlite : options.backend, clock_);
  auto opened = options.share_store_with ? options.share_store_with->home_->open() : home_->open();
  if (!opened) throw std::runtime_error("store: " + opened.error().detail);
  std::unique_ptr<store::Store> st = std::move(*opened);
  store_ = st.get();

  net::ServerOptions fake_options;
  fake_options.name = "fake-inference";
  fake_ = std::make_unique<net::HttpServer>(io_, fake_options, fake_inference_router(inference_),
                                            nullptr);
  auto fake_port = fake_->listen();
  if (!fake_port) throw std::runtime_error("fake inference: " + fake_port.error().detail);
  std::uint16_t inference_port =
      options.inference_reachable ? *fake_port : edgecoder::testing::free_port();

  core::LoadOptions load;
  load.default_env_file = "";
  load.environment = {
      {"EDGE_RUNTIME_MODE", "coordinator"},
      {"MESH_AUTH_TOKEN", kMesh},
      {"ADMIN_API_TOKEN", kAdmin},
      {"INFERENCE_AUTH_TOKEN", kInference},
      {"INFERENCE_URL", "http://127.0.0.1:" + std::to_string(inference_port)},
      {"AUTO_APPROVE_AGENTS", options.auto_approve ? "true" : "false"},
      {"COORDINATOR_LEASE_BUDGET_MS", std::to_string(kBudget)},
      {"COORDINATOR_LEASE_SWEEP_MS", "20"},
      {"COORDINATOR_EVENTS_POLL_MS", "20"},
      {"EDGECODER_DATA_DIR", home_->data_dir().string()},
      {"EDGECODER_RETENTION_DAYS", "0"},
      {"OLLAMA_HOST", "http://127.0.0.1:" + std::to_string(edgecoder::testing::free_port())},
  };
  for (const auto& [k, v] : options.extra_settings) load.environment.emplace_back(k, v);
  auto settings = core::Settings::load(load);
  if (!settings) throw std::runtime_error(settings.error().detail);
  auto config = core::parse_config(std::move(*settings));
  if (!config) throw std::runtime_error(config.error().detail);

  net::Router router;
  MountOverrides overrides;
  overrides.store = std::move(st);
  overrides.clock = clock_->fn();
  auto mounted = mount(*config, io_, router, registry_, std::move(overrides));
  if (!mounted) throw std::runtime_error("mount: " + mounted.error().detail);
  mounted_ = mounted->state;
  net::ServerOptions server_options;
  server_options.name = "coordinator";
  server_ = std::make_unique<net::HttpServer>(io_, server_options, std::move(router), &registry_);
  auto port = server_->listen();
  if (!port) throw std::runtime_error("listen: " + port.error().detail);
  port_ = *port;
  server_->start();
  fake_->start();
  for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
}

Harness::~Harness() {
  server_->shutdown();
  fake_->shutdown();
  io_.stop();
  for (auto& t : threads_) t.join();
  store_->wait_idle();  // no store call may complete into the loop once it is gone
  server_.reset();
  fake_.reset();
  mounted_.reset();
}

Reply http_call(std::uint16_t port, const std::string& method, const std::string& path,
                const std::optional<nlohmann::json>& body, net::Headers headers) {
  net::ClientRequest req;
  req.method = method;
  req.url = "http://127.0.0.1:" + std::to_string(port) + path;
  req.headers = std::move(headers);
  if (body) {
    req.body = body->dump();
    req.headers.emplace_back("content-type", "application/json");
  }
  req.total_timeout = std::chrono::seconds(30);
  auto resp = net::fetch(std::move(req));
  Reply out;
  if (!resp) {
    ADD_FAILURE() << method << " " << path << ": " << resp.error().detail;
    return out;
  }
  out.status = resp->status;
  out.text = resp->body;
  out.headers = resp->headers;
  out.body = nlohmann::json::parse(resp->body, nullptr, false);
  return out;
}

Reply Harness::request(const std::string& method, const std::string& path,
                       const std::optional<nlohmann::json>& body, net::Headers headers) {
  return http_call(port_, method, path, body, std::move(headers));
}

Reply Harness::post(const std::string& path, const nlohmann::json& body) {
  return request("POST", path, body, {{"x-mesh-token", kMesh}});
}

Reply Harness::get(const std::string& path) {
  return request("GET", path, std::nullopt, {{"x-mesh-token", kMesh}});
}

Reply Harness::admin_post(const std::string& path, const nlohmann::json& body) {
  return request("POST", path, body, {{"x-admin-token", kAdmin}});
}

Reply Harness::admin_get(const std::string& path) {
  return request("GET", path, std::nullopt, {{"x-admin-token", kAdmin}});
}

nlohmann::json Harness::register_agent(const std::string& id, nlohmann::json extra) {
  nlohmann::json body = {{"agentId", id},
                         {"os", "debian"},
                         {"version", "1.0.0"},
                         {"mode", "swarm-only"},
                         {"sandboxMode", "bwrap"}};
  if (extra.is_object()) body.update(extra);
  auto r = post("/register", body);
  EXPECT_EQ(r.status, 200) << r.text;
  return r.body;
}

nlohmann::json Harness::pull(const std::string& agent) {
  auto r = post("/pull", {{"agentId", agent}});
  EXPECT_EQ(r.status, 200) << r.text;
  return r.body.is_object() ? r.body.value("subtask", nlohmann::json()) : nlohmann::json();
}

Reply Harness::result(const std::string& agent, const nlohmann::json& subtask,
                      const std::string& output, bool ok) {
  nlohmann::json body = {{"subtaskId", subtask.value("id", "")},
                         {"taskId", subtask.value("taskId", "")},
                         {"agentId", agent},
                         {"ok", ok},
                         {"output", output},
                         {"durationMs", 12}};
  if (subtask.contains("attempt")) body["attempt"] = subtask["attempt"];
  return post("/result", body);
}

std::vector<std::string> Harness::create_task(const nlohmann::json& body, std::string* task_id) {
  auto r = post("/tasks", body);
  EXPECT_TRUE(r.status == 201 || r.status == 200) << r.text;
  if (task_id) *task_id = r.body.value("taskId", "");
  std::vector<std::string> ids;
  if (r.body.is_object() && r.body.contains("subtasks")) {
    for (const auto& s : r.body["subtasks"]) ids.push_back(s.get<std::string>());
  }
  return ids;
}

nlohmann::json Harness::task(const std::string& task_id) {
  auto r = get("/tasks/" + task_id);
  EXPECT_EQ(r.status, 200) << r.text;
  return r.body;
}

}  // namespace edgecoder::coordinator::testing
