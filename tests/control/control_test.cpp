// The control plane against a real coordinator on loopback: who may use operator routes, what
// the network mode changes, the audit log, registration-token revocation, credit adjustment and
// the discovery feed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <sqlite3.h>

#include "control/control.h"
#include "coordinator/harness.h"
#include "core/config.h"
#include "core/crypto.h"
#include "net/server.h"
#include "support/child_process.h"

namespace edgecoder::control {
namespace {

using coordinator::testing::Harness;
using coordinator::testing::HarnessOptions;
using coordinator::testing::kAdmin;
using coordinator::testing::kMesh;
using coordinator::testing::Reply;
using nlohmann::json;

// The control plane mounted on its own loopback server, pointed at a coordinator.
class ControlPlane {
 public:
  ControlPlane(std::uint16_t coordinator_port, std::map<std::string, std::string> extra = {})
      : clock_(std::make_shared<store::testing::TestClock>()),
        home_(store::Backend::sqlite, clock_) {
    core::LoadOptions load;
    load.default_env_file = "";
    load.environment = {
        {"EDGE_RUNTIME_MODE", "control-plane"},
        {"ADMIN_API_TOKEN", kAdmin},
        {"COORDINATOR_URL", "http://127.0.0.1:" + std::to_string(coordinator_port) + "/"},
        {"EDGECODER_DATA_DIR", home_.data_dir().string()},
    };
    for (const auto& [k, v] : extra) load.environment.emplace_back(k, v);
    auto settings = core::Settings::load(load);
    if (!settings) throw std::runtime_error(settings.error().detail);
    auto config = core::parse_config(std::move(*settings));
    if (!config) throw std::runtime_error(config.error().detail);
    auto st = home_.open();
    if (!st) throw std::runtime_error(st.error().detail);
    store_ = st->get();
    net::Router router;
    MountOverrides overrides{std::move(*st), clock_->fn()};
    auto mounted = mount(*config, io_, router, registry_, std::move(overrides));
    if (!mounted) throw std::runtime_error(mounted.error().detail);
    mounted_ = mounted->state;
    net::ServerOptions options;
    options.name = "control-plane";
    server_ = std::make_unique<net::HttpServer>(io_, options, std::move(router), &registry_);
    auto port = server_->listen();
    if (!port) throw std::runtime_error(port.error().detail);
    port_ = *port;
    server_->start();
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~ControlPlane() {
    server_->shutdown();
    io_.stop();
    for (auto& t : threads_) t.join();
    store_->wait_idle();  // no store call may complete into the loop once it is gone
    server_.reset();
    mounted_.reset();
  }

  store::Store& store() { return *store_; }
  std::uint16_t port() const { return port_; }

  Reply request(const std::string& method, const std::string& path, const std::optional<json>& body,
                net::Headers headers) {
    return coordinator::testing::http_call(port_, method, path, body, std::move(headers));
  }
  Reply get(const std::string& path) { return request("GET", path, std::nullopt, admin()); }
  Reply post(const std::string& path, const json& body = json::object()) {
    return request("POST", path, body, admin());
  }
  static net::Headers admin() { return {{"x-admin-token", kAdmin}}; }

 private:
  std::shared_ptr<store::testing::TestClock> clock_;
  store::testing::StoreHome home_;
  store::Store* store_ = nullptr;
  core::metrics::Registry registry_;
  boost::asio::io_context io_;
  std::shared_ptr<void> mounted_;
  std::unique_ptr<net::HttpServer> server_;
  std::vector<std::thread> threads_;
  std::uint16_t port_ = 0;
};

// Every operator route, with a body that would be valid.
const std::vector<std::tuple<std::string, std::string, json>>& operator_routes() {
  static const std::vector<std::tuple<std::string, std::string, json>> routes = {
      {"GET", "/agents", nullptr},
      {"GET", "/agents/catalog", nullptr},
      {"POST", "/agents/agent-1/approval", {{"approved", true}}},
      {"POST", "/agents/agent-1/mode", {{"mode", "ide-enabled"}}},
      {"GET", "/agents/agent-1", nullptr},
      {"GET", "/registration-tokens", nullptr},
      {"POST", "/registration-tokens", {{"label", "x"}}},
      {"POST", "/registration-tokens/abc/revoke", json::object()},
      {"DELETE", "/registration-tokens/abc", nullptr},
      {"GET", "/network/mode", nullptr},
      {"POST", "/network/mode", {{"networkMode", "enterprise_overlay"}}},
      {"GET", "/network/summary", nullptr},
      {"GET", "/credits/acct-1/balance", nullptr},
      {"GET", "/credits/acct-1/history", nullptr},
      {"POST", "/credits/acct-1/adjust", {{"credits", 5}, {"reason", "test"}}},
      {"GET", "/audit", nullptr},
      {"GET", "/security/blacklist", nullptr},
      {"GET", "/security/blacklist/audit", nullptr},
      {"POST",
       "/security/blacklist",
       {{"agentId", "agent-1"}, {"reasonCode", "manual_review"}, {"reason", "test"}}},
      {"DELETE", "/security/blacklist/agent-1", {{"reason", "test"}}},
      {"GET", "/rollouts", nullptr},
      {"POST", "/rollouts", {{"modelId", "m:1"}}},
      {"GET", "/rollouts/r-1", nullptr},
      {"POST", "/rollouts/r-1/promote", json::object()},
      {"POST", "/rollouts/r-1/pause", json::object()},
      {"POST", "/rollouts/r-1/resume", json::object()},
      {"POST", "/rollouts/r-1/rollback", json::object()},
      {"GET", "/admin/api/dashboard-data", nullptr},
  };
  return routes;
}

std::optional<json> body_of(const json& j) {
  if (j.is_null()) return std::nullopt;
  return j;
}

TEST(ControlAuth, EveryOperatorRouteRefusesNoTokenAWrongTokenAndTheMeshToken) {
  Harness h;
  ControlPlane cp(h.port());
  const std::vector<std::pair<std::string, net::Headers>> callers = {
      {"no token", {}},
      {"wrong token", {{"x-admin-token", "not-the-admin-token"}}},
      {"wrong bearer", {{"authorization", "Bearer not-the-admin-token"}}},
      {"mesh token", {{"x-mesh-token", kMesh}}},
      {"mesh token as admin", {{"x-admin-token", kMesh}}},
      {"mesh token as bearer", {{"authorization", std::string("Bearer ") + kMesh}}},
  };
  for (const auto& [method, path, body] : operator_routes()) {
    for (const auto& [who, headers] : callers) {
      auto r = cp.request(method, path, body_of(body), headers);
      EXPECT_EQ(r.status, 401) << method << " " << path << " with " << who;
      EXPECT_EQ(r.body.value("error", ""), "admin_token_required") << r.text;
    }
  }
  // Nothing changed on the coordinator and nothing was audited.
  EXPECT_EQ(h.admin_get("/admin/network/mode").body.value("networkMode", ""), "public_mesh");
  EXPECT_TRUE(cp.store().list_audit(0, 0)->empty());
  // The right token, as x-admin-token or as Bearer.
  EXPECT_EQ(cp.request("GET", "/agents", std::nullopt, {{"x-admin-token", kAdmin}}).status, 200);
  EXPECT_EQ(cp.request("GET", "/agents", std::nullopt,
                       {{"authorization", std::string("Bearer ") + kAdmin}})
                .status,
            200);
}

TEST(ControlAuth, PublicRoutesAnswerWithoutAToken) {
  Harness h;
  ControlPlane cp(h.port());
  auto feed = cp.request("GET", "/network/coordinators", std::nullopt, {});
  EXPECT_EQ(feed.status, 200) << feed.text;
  EXPECT_EQ(feed.body.value("count", 0), 1);
}

TEST(ControlAuth, AllowedAdminIpsRefuseOtherAddressesAndSpoofedForwardedFor) {
  Harness h;
  {
    ControlPlane cp(h.port(), {{"ALLOWED_ADMIN_IPS", "10.1.2.3, 192.168.0.0/16"}});
    auto r = cp.get("/agents");
    EXPECT_EQ(r.status, 403) << r.text;
    EXPECT_EQ(r.body.value("error", ""), "admin_ip_forbidden");
    // 127.0.0.1 is no trusted proxy: its X-Forwarded-For is not believed.
    auto spoofed = cp.request("GET", "/agents", std::nullopt,
                              {{"x-admin-token", kAdmin}, {"x-forwarded-for", "10.1.2.3"}});
    EXPECT_EQ(spoofed.status, 403) << spoofed.text;
    // The public feed still answers.
    EXPECT_EQ(cp.request("GET", "/network/coordinators", std::nullopt, {}).status, 200);
  }
  {
    ControlPlane cp(h.port(), {{"ALLOWED_ADMIN_IPS", "10.1.2.3, 192.168.0.0/16"},
                               {"TRUSTED_PROXIES", "127.0.0.1"}});
    // Through the trusted proxy: the client it names is allowed...
    auto proxied = cp.request("GET", "/agents", std::nullopt,
                              {{"x-admin-token", kAdmin}, {"x-forwarded-for", "192.168.7.9"}});
    EXPECT_EQ(proxied.status, 200) << proxied.text;
    // ...but a client cannot choose its address by prepending to the header the proxy appends.
    auto prepended =
        cp.request("GET", "/agents", std::nullopt,
                   {{"x-admin-token", kAdmin}, {"x-forwarded-for", "10.1.2.3, 203.0.113.5"}});
    EXPECT_EQ(prepended.status, 403) << prepended.text;
    // An allowed address still needs the token.
    auto no_token = cp.request("GET", "/agents", std::nullopt, {{"x-forwarded-for", "10.1.2.3"}});
    EXPECT_EQ(no_token.status, 401) << no_token.text;
  }
  // The coordinator's own operator routes obey ALLOWED_ADMIN_IPS too.
  HarnessOptions fenced;
  fenced.extra_settings = {{"ALLOWED_ADMIN_IPS", "10.0.0.0/8"}};
  Harness h2(fenced);
  auto r = h2.admin_get("/admin/agents");
  EXPECT_EQ(r.status, 403) << r.text;
  EXPECT_EQ(r.body.value("error", ""), "admin_ip_forbidden");
}

TEST(ControlAuth, ABadAddressListStopsTheStartNamingTheSetting) {
  Harness h;
  try {
    ControlPlane cp(h.port(), {{"ALLOWED_ADMIN_IPS", "10.0.0.1, not-an-ip"}});
    ADD_FAILURE() << "mounted with a bad ALLOWED_ADMIN_IPS";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ALLOWED_ADMIN_IPS"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not-an-ip"), std::string::npos) << e.what();
  }
}

TEST(ControlNetwork, EnterpriseOverlayRefusesAnAgentPublicMeshServes) {
  Harness h;  // AUTO_APPROVE_AGENTS=true: the mesh token approves an agent by itself
  ControlPlane cp(h.port());
  h.register_agent("auto-1");
  EXPECT_EQ(h.post("/pull", {{"agentId", "auto-1"}}).status, 200);
  EXPECT_EQ(h.get("/features").body.value("public_mesh", false), true);

  auto set = cp.post("/network/mode", {{"networkMode", "enterprise_overlay"}});
  ASSERT_EQ(set.status, 200) << set.text;
  EXPECT_EQ(set.body.value("networkMode", ""), "enterprise_overlay");

  auto pull = h.post("/pull", {{"agentId", "auto-1"}});
  EXPECT_EQ(pull.status, 403) << pull.text;
  EXPECT_EQ(pull.body.value("reason", ""), "enterprise_overlay_requires_approval");
  EXPECT_EQ(h.post("/heartbeat", {{"agentId", "auto-1"}}).status, 403);
  auto again = h.register_agent("auto-1");
  EXPECT_EQ(again.value("accepted", true), false);
  EXPECT_EQ(again.value("reason", ""), "enterprise_overlay_requires_approval");
  EXPECT_FALSE(again.contains("meshToken"));
  auto features = h.get("/features");
  EXPECT_EQ(features.body.value("enterprise_overlay", false), true);
  EXPECT_EQ(features.body.value("public_mesh", true), false);
  EXPECT_EQ(h.get("/identity").body.value("networkMode", ""), "enterprise_overlay");
  // A new agent with only the mesh token is not approved by itself any more.
  EXPECT_EQ(h.register_agent("auto-2").value("approval", ""), "pending");

  // An agent with a registration token of this mesh is served.
  auto token = cp.post("/registration-tokens", {{"label", "lab"}});
  ASSERT_EQ(token.status, 201) << token.text;
  auto reg = h.request("POST", "/register",
                       json{{"agentId", "enrolled-1"},
                            {"os", "debian"},
                            {"version", "1.0.0"},
                            {"mode", "swarm-only"},
                            {"registrationToken", token.body.value("token", "")}},
                       {});
  ASSERT_EQ(reg.status, 200) << reg.text;
  EXPECT_EQ(reg.body.value("accepted", false), true);
  EXPECT_EQ(h.post("/pull", {{"agentId", "enrolled-1"}}).status, 200);

  // An operator's approval serves the auto-approved agent again.
  ASSERT_EQ(cp.post("/agents/auto-1/approval", {{"approved", true}}).status, 200);
  EXPECT_EQ(h.post("/pull", {{"agentId", "auto-1"}}).status, 200);
  auto catalog = cp.get("/agents/catalog");
  ASSERT_EQ(catalog.status, 200) << catalog.text;
  EXPECT_EQ(catalog.body["totals"].value("agents", 0), 3);
  EXPECT_EQ(catalog.body["totals"].value("served", 0), 2);  // auto-2 is pending
  EXPECT_EQ(catalog.body["totals"].value("pending", 0), 1);

  // Back to public_mesh: the mesh token serves again.
  ASSERT_EQ(cp.post("/network/mode", {{"networkMode", "public_mesh"}}).status, 200);
  EXPECT_EQ(h.get("/features").body.value("public_mesh", false), true);
  auto mode = cp.get("/network/mode");
  EXPECT_EQ(mode.body.value("networkMode", ""), "public_mesh");
  EXPECT_EQ(mode.body.value("source", ""), "operator");
}

TEST(ControlNetwork, TheModeIsStoredSoEveryCoordinatorOnTheStoreFollowsIt) {
  Harness h;
  h.register_agent("auto-1");
  // Another coordinator (or the control plane of a restarted node) wrote the mode to the shared
  // store: this coordinator's sweeper picks it up without any request to it.
  ASSERT_TRUE(h.store().put_mesh_setting("network_mode", "enterprise_overlay", "operator"));
  Reply pull;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    pull = h.post("/pull", {{"agentId", "auto-1"}});
    if (pull.status == 403) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(pull.status, 403) << pull.text;
  auto bad = h.admin_post("/admin/network/mode", {{"networkMode", "open"}});
  EXPECT_EQ(bad.status, 400) << bad.text;
  ControlPlane cp(h.port());
  EXPECT_EQ(cp.post("/network/mode", {{"networkMode", "open"}}).status, 400);
  EXPECT_EQ(cp.post("/network/mode", json::object()).status, 400);
  EXPECT_TRUE(cp.store().list_audit(0, 0)->empty());
}

TEST(ControlTokens, ARevokedRegistrationTokenNoLongerRegisters) {
  HarnessOptions options;
  options.auto_approve = false;
  Harness h(options);
  ControlPlane cp(h.port());
  auto created = cp.post("/registration-tokens", {{"label", "laptop fleet"}});
  ASSERT_EQ(created.status, 201) << created.text;
  const std::string secret = created.body.value("token", "");
  const std::string id = created.body.value("id", "");
  ASSERT_FALSE(secret.empty());
  // Shown once: the listing has the token's record but not the token.
  auto listed = cp.get("/registration-tokens");
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(listed.text.find(secret), std::string::npos);
  ASSERT_EQ(listed.body["tokens"].size(), 1u);

  auto enrol = [&](const std::string& agent) {
    return h.request("POST", "/register",
                     json{{"agentId", agent},
                          {"os", "debian"},
                          {"version", "1.0.0"},
                          {"mode", "swarm-only"},
                          {"registrationToken", secret}},
                     {});
  };
  auto first = enrol("laptop-1");
  ASSERT_EQ(first.status, 200) << first.text;
  EXPECT_EQ(first.body.value("approval", ""), "approved");

  auto revoked = cp.post("/registration-tokens/" + id + "/revoke");
  ASSERT_EQ(revoked.status, 200) << revoked.text;
  auto second = enrol("laptop-2");
  EXPECT_EQ(second.status, 403) << second.text;
  EXPECT_EQ(second.body.value("error", ""), "registration_token_invalid");
  EXPECT_EQ(cp.request("DELETE", "/registration-tokens/" + id, std::nullopt, cp.admin()).status,
            200);  // idempotent
  auto unknown = cp.post("/registration-tokens/no-such-token/revoke");
  EXPECT_EQ(unknown.status, 404) << unknown.text;
}

TEST(ControlCredits, AnAdjustmentNeedsAReasonMovesTheBalanceAndIsInTheHistory) {
  Harness h;
  ControlPlane cp(h.port());
  auto up = cp.post("/credits/acct-1/adjust", {{"credits", 25.5}, {"reason", "welcome bonus"}});
  ASSERT_EQ(up.status, 200) << up.text;
  EXPECT_DOUBLE_EQ(up.body.value("balance", 0.0), 25.5);
  auto down = cp.post("/credits/acct-1/adjust",
                      {{"credits", -5}, {"reason", "refund of a duplicate"}, {"txId", "t-1"}});
  ASSERT_EQ(down.status, 200) << down.text;
  EXPECT_DOUBLE_EQ(down.body.value("balance", 0.0), 20.5);
  // The same txId again changes nothing.
  auto repeat = cp.post("/credits/acct-1/adjust",
                        {{"credits", -5}, {"reason", "refund of a duplicate"}, {"txId", "t-1"}});
  ASSERT_EQ(repeat.status, 200) << repeat.text;
  EXPECT_DOUBLE_EQ(repeat.body.value("balance", 0.0), 20.5);

  auto balance = cp.get("/credits/acct-1/balance");
  ASSERT_EQ(balance.status, 200) << balance.text;
  EXPECT_DOUBLE_EQ(balance.body.value("balance", 0.0), 20.5);
  auto history = cp.get("/credits/acct-1/history");
  ASSERT_EQ(history.status, 200) << history.text;
  ASSERT_EQ(history.body["history"].size(), 2u);
  EXPECT_EQ(history.body["history"][0].value("reason", ""), "refund of a duplicate");  // newest
  EXPECT_DOUBLE_EQ(history.body["history"][0].value("credits", 0.0), -5.0);
  EXPECT_EQ(history.body["history"][1].value("kind", ""), "adjust");
  EXPECT_DOUBLE_EQ(cp.get("/credits/other/balance").body.value("balance", -1.0), 0.0);

  for (const json& bad :
       {json{{"credits", 5}}, json{{"credits", 5}, {"reason", "x"}},
        json{{"credits", 0}, {"reason", "nothing"}}, json{{"credits", "5"}, {"reason", "a string"}},
        json{{"credits", 1e13}, {"reason", "too much"}}, json{{"reason", "no amount"}}}) {
    auto r = cp.post("/credits/acct-1/adjust", bad);
    EXPECT_EQ(r.status, 400) << bad.dump() << " -> " << r.text;
  }
  EXPECT_EQ(cp.post("/credits/bad%20id/adjust", {{"credits", 1}, {"reason", "bad id"}}).status,
            400);
  EXPECT_DOUBLE_EQ(cp.get("/credits/acct-1/balance").body.value("balance", 0.0), 20.5);
}

TEST(ControlAudit, EveryChangeIsRecordedWithWhoWhatWhenAndWhere) {
  Harness h;
  ControlPlane cp(h.port());
  h.register_agent("agent-1");
  net::Headers alice = {{"x-admin-token", kAdmin}, {"x-edgecoder-operator", "alice"}};
  ASSERT_EQ(cp.request("POST", "/agents/agent-1/approval", json{{"approved", false}}, alice).status,
            200);
  auto token = cp.post("/registration-tokens", {{"label", "ci"}});
  ASSERT_EQ(token.status, 201);
  const std::string secret = token.body.value("token", "");
  ASSERT_EQ(cp.post("/registration-tokens/" + token.body.value("id", "") + "/revoke").status, 200);
  ASSERT_EQ(cp.post("/network/mode", {{"networkMode", "enterprise_overlay"}}).status, 200);
  ASSERT_EQ(cp.post("/credits/acct-9/adjust", {{"credits", 3}, {"reason", "support"}}).status, 200);
  // A change the coordinator refused is not recorded.
  EXPECT_EQ(cp.post("/agents/no-such-agent/approval", {{"approved", true}}).status, 404);

  auto audit = cp.get("/audit");
  ASSERT_EQ(audit.status, 200) << audit.text;
  const json& records = audit.body["records"];
  ASSERT_EQ(records.size(), 5u) << audit.text;
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"agent.deny", "agent-1"},
      {"registration_token.create", token.body.value("id", "")},
      {"registration_token.revoke", token.body.value("id", "")},
      {"network.mode", "enterprise_overlay"},
      {"credits.adjust", "acct-9"}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(records[i].value("action", ""), expected[i].first) << i;
    EXPECT_EQ(records[i].value("target", ""), expected[i].second) << i;
    EXPECT_EQ(records[i].value("from", ""), "127.0.0.1") << i;
    EXPECT_GT(records[i].value("atMs", std::int64_t{0}), 0) << i;
  }
  EXPECT_EQ(records[0].value("actor", ""), "operator:alice");
  EXPECT_EQ(records[1].value("actor", ""), "operator");
  EXPECT_EQ(records[1]["detail"].value("label", ""), "ci");
  EXPECT_EQ(records[4]["detail"].value("reason", ""), "support");
  EXPECT_EQ(audit.text.find(secret), std::string::npos) << "the token secret is in the audit log";
  EXPECT_EQ(audit.text.find(kAdmin), std::string::npos) << "the admin token is in the audit log";

  // Paging.
  auto page = cp.get("/audit?limit=2");
  ASSERT_EQ(page.body["records"].size(), 2u);
  auto rest = cp.get("/audit?after=" + std::to_string(page.body.value("nextAfter", 0)));
  ASSERT_EQ(rest.body["records"].size(), 3u);
  EXPECT_EQ(rest.body["records"][0].value("action", ""), "registration_token.revoke");
  EXPECT_EQ(cp.get("/audit?limit=0").status, 400);
  EXPECT_EQ(cp.get("/audit?after=x").status, 400);
}

TEST(ControlDiscovery, TheFeedNamesTheCoordinatorAndSurvivesItsAbsence) {
  HarnessOptions options;
  options.extra_settings = {{"COORDINATOR_PUBLIC_URL", "https://coord.example.net:8443/base"}};
  Harness h(options);
  {
    ControlPlane cp(h.port());
    auto feed = cp.request("GET", "/network/coordinators", std::nullopt, {});
    ASSERT_EQ(feed.status, 200) << feed.text;
    ASSERT_EQ(feed.body.value("count", 0), 1) << feed.text;
    EXPECT_EQ(feed.body["coordinators"][0].value("coordinatorUrl", ""),
              "https://coord.example.net:8443");
    EXPECT_EQ(feed.body["coordinators"][0].value("source", ""), "mesh");
    auto summary = cp.get("/network/summary");
    ASSERT_EQ(summary.status, 200) << summary.text;
    EXPECT_EQ(summary.body.value("networkMode", ""), "public_mesh");
  }
  // Nothing listens: operator routes say the coordinator is unreachable; the feed still answers
  // with the configured coordinator.
  const auto closed = edgecoder::testing::free_port();
  ControlPlane cp(closed);
  auto agents = cp.get("/agents");
  EXPECT_EQ(agents.status, 502) << agents.text;
  EXPECT_EQ(agents.body.value("error", ""), "coordinator_unreachable");
  auto feed = cp.request("GET", "/network/coordinators", std::nullopt, {});
  ASSERT_EQ(feed.status, 200) << feed.text;
  EXPECT_EQ(feed.body["coordinators"][0].value("source", ""), "bootstrap");
  EXPECT_EQ(feed.body["coordinators"][0].value("coordinatorUrl", ""),
            "http://127.0.0.1:" + std::to_string(closed));
  EXPECT_EQ(cp.post("/network/mode", {{"networkMode", "public_mesh"}}).status, 502);
  EXPECT_TRUE(cp.store().list_audit(0, 0)->empty());
}

}  // namespace
}  // namespace edgecoder::control

namespace edgecoder::control {
namespace {

// Polls GET `path` on the control plane until `pred` holds (deadline 20 s); the last answer.
template <typename Pred>
Reply wait_for(ControlPlane& cp, const std::string& path, Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  Reply r;
  do {
    r = cp.get(path);
    if (r.status == 200 && pred(r.body)) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  return r;
}

json state_of(const json& rollout, const std::string& agent) {
  for (const auto& s : rollout.value("agentStates", json::array())) {
    if (s.value("agentId", "") == agent) return s;
  }
  return nullptr;
}

// A simulated agent's report on its switch, as the agent binary sends it.
Reply ack(Harness& h, const std::string& agent, const json& orchestration, bool ok,
          const std::string& error = "") {
  json body = {{"rolloutId", orchestration.value("rolloutId", "")}, {"ok", ok}};
  if (!error.empty()) body["error"] = error;
  return h.post("/orchestration/agents/" + agent + "/ack", body);
}

json heartbeat_switch(Harness& h, const std::string& agent) {
  auto r = h.post("/heartbeat", {{"agentId", agent}});
  EXPECT_EQ(r.status, 200) << r.text;
  return r.body.value("orchestration", json());
}

TEST(ControlRollouts, CanaryThenBatchThenRollbackWithTheAgentsReports) {
  Harness h;
  ControlPlane cp(h.port(), {{"CONTROL_ROLLOUT_POLL_MS", "20"}});
  for (const char* id : {"a1", "a2", "a3"}) h.register_agent(id, {{"activeModel", "old:1"}});

  auto created = cp.post("/rollouts", {{"modelId", "new:2"},
                                       {"canaryPercent", 30},
                                       {"batchSize", 1},
                                       {"rollbackOnFailurePercent", 40}});
  ASSERT_EQ(created.status, 201) << created.text;
  const std::string id = created.body.value("rolloutId", "");
  EXPECT_EQ(created.body["canaryAgents"], json::array({"a1"}));
  EXPECT_EQ(created.body.value("stage", ""), "canary");
  // The canary finds its switch in its heartbeat; the others have none.
  json sw = heartbeat_switch(h, "a1");
  ASSERT_TRUE(sw.is_object()) << sw;
  EXPECT_EQ(sw.value("model", ""), "new:2");
  EXPECT_EQ(sw.value("pending", false), true);
  EXPECT_TRUE(heartbeat_switch(h, "a2").is_null());
  // Not promotable while the canary has not reported.
  auto early = cp.post("/rollouts/" + id + "/promote");
  EXPECT_EQ(early.status, 409) << early.text;
  EXPECT_EQ(early.body.value("error", ""), "health_check_pending");

  ASSERT_EQ(h.post("/orchestration/agents/a1/status",
                   {{"rolloutId", id}, {"phase", "downloading"}, {"progressPct", 50}})
                .status,
            200);
  auto seen = wait_for(cp, "/rollouts/" + id, [](const json& r) {
    return state_of(r, "a1").value("status", "") == "downloading";
  });
  EXPECT_EQ(state_of(seen.body, "a1").value("status", ""), "downloading") << seen.text;
  ASSERT_EQ(ack(h, "a1", sw, true).status, 200);
  auto healthy = wait_for(cp, "/rollouts/" + id, [](const json& r) {
    return state_of(r, "a1").value("status", "") == "healthy";
  });
  ASSERT_EQ(state_of(healthy.body, "a1").value("status", ""), "healthy") << healthy.text;
  EXPECT_EQ(healthy.body.value("progressPercent", 0), 100);

  auto promoted = cp.post("/rollouts/" + id + "/promote");
  ASSERT_EQ(promoted.status, 200) << promoted.text;
  EXPECT_EQ(promoted.body.value("stage", ""), "batch");
  EXPECT_EQ(promoted.body.value("previousStage", ""), "canary");
  EXPECT_EQ(promoted.body["enrolledAgents"], json::array({"a2"}));  // batchSize 1
  json sw2 = heartbeat_switch(h, "a2");
  ASSERT_TRUE(sw2.is_object());
  ASSERT_EQ(ack(h, "a2", sw2, false, "probe: model answered 500").status, 200);
  auto failed = wait_for(cp, "/rollouts/" + id, [](const json& r) {
    return state_of(r, "a2").value("status", "") == "failed";
  });
  EXPECT_EQ(state_of(failed.body, "a2").value("error", ""), "probe: model answered 500");
  // 1 of 2 failed: 50% >= 40%: the health gate refuses.
  auto gated = cp.post("/rollouts/" + id + "/promote");
  EXPECT_EQ(gated.status, 400) << gated.text;
  EXPECT_EQ(gated.body.value("error", ""), "health_check_failed");
  EXPECT_EQ(gated.body.value("failurePercent", 0), 50);
  EXPECT_EQ(gated.body.value("threshold", 0), 40);

  auto back = cp.post("/rollouts/" + id + "/rollback");
  ASSERT_EQ(back.status, 200) << back.text;
  EXPECT_EQ(back.body.value("stage", ""), "rolled_back");
  EXPECT_EQ(back.body["rolledBackAgents"], json::array({"a1", "a2"}));
  for (const char* agent : {"a1", "a2"}) {
    json rb = heartbeat_switch(h, agent);
    ASSERT_TRUE(rb.is_object()) << agent;
    EXPECT_EQ(rb.value("model", ""), "old:1") << agent;  // each agent's previous model
    EXPECT_EQ(rb.value("rolloutId", ""), id + ":rollback");
    ASSERT_EQ(ack(h, agent, rb, true).status, 200);
    // A late report on the replaced switch is refused.
    EXPECT_EQ(h.post("/orchestration/agents/" + std::string(agent) + "/ack",
                     {{"rolloutId", id}, {"ok", true}})
                  .status,
              409);
  }
  auto done = wait_for(cp, "/rollouts/" + id, [](const json& r) {
    return state_of(r, "a1").value("status", "") == "healthy" &&
           state_of(r, "a2").value("status", "") == "healthy";
  });
  EXPECT_EQ(state_of(done.body, "a1").value("rollback", false), true) << done.text;
  EXPECT_EQ(state_of(done.body, "a2").value("modelVersion", ""), "old:1");
  EXPECT_EQ(cp.post("/rollouts/" + id + "/promote").body.value("error", ""),
            "cannot_promote_rolled_back");

  auto list = cp.get("/rollouts");
  ASSERT_EQ(list.body["rollouts"].size(), 1u);
  EXPECT_EQ(list.body["rollouts"][0].value("agentCount", 0), 2);
  std::vector<std::string> actions;
  const auto audit = cp.get("/audit");
  for (const auto& a : audit.body["records"]) actions.push_back(a.value("action", ""));
  EXPECT_EQ(actions,
            (std::vector<std::string>{"rollout.create", "rollout.promote", "rollout.rollback"}));
}

TEST(ControlRollouts, AFailedCanaryRefusesPromotionAndRollsBack) {
  Harness h;
  ControlPlane cp(h.port(), {{"CONTROL_ROLLOUT_POLL_MS", "20"}});
  for (const char* id : {"a1", "a2", "a3"}) h.register_agent(id, {{"activeModel", "old:1"}});
  auto created = cp.post("/rollouts", {{"model", "new:2"}, {"canaryPercent", 30}});
  ASSERT_EQ(created.status, 201) << created.text;
  const std::string id = created.body.value("rolloutId", "");
  ASSERT_EQ(ack(h, "a1", heartbeat_switch(h, "a1"), false, "pull: no such model").status, 200);
  wait_for(cp, "/rollouts/" + id,
           [](const json& r) { return state_of(r, "a1").value("status", "") == "failed"; });
  auto gated = cp.post("/rollouts/" + id + "/promote");
  EXPECT_EQ(gated.status, 400) << gated.text;
  EXPECT_EQ(gated.body.value("error", ""), "health_check_failed");
  EXPECT_EQ(gated.body.value("failurePercent", 0), 100);
  EXPECT_EQ(gated.body.value("threshold", 0), 30);
  auto back = cp.post("/rollouts/" + id + "/rollback");
  ASSERT_EQ(back.status, 200) << back.text;
  EXPECT_EQ(heartbeat_switch(h, "a1").value("model", ""), "old:1");
}

TEST(ControlRollouts, BadRequestsAndAutoPromotion) {
  Harness h;
  ControlPlane cp(h.port(), {{"CONTROL_ROLLOUT_POLL_MS", "20"}});
  // No agent: nothing to roll out to.
  EXPECT_EQ(cp.post("/rollouts", {{"modelId", "m:1"}}).status, 409);
  h.register_agent("a1", {{"activeModel", "old:1"}});
  h.register_agent("a2", {{"activeModel", "old:1"}});
  for (const json& bad :
       {json::object(), json{{"modelId", "m 1"}}, json{{"modelId", "m:1"}, {"canaryPercent", 0}},
        json{{"modelId", "m:1"}, {"targetProvider", "openai"}},
        json{{"modelId", "m:1"}, {"autoPromote", "yes"}}}) {
    EXPECT_EQ(cp.post("/rollouts", bad).status, 400) << bad.dump();
  }
  EXPECT_EQ(cp.get("/rollouts/nope").status, 404);
  EXPECT_EQ(cp.post("/rollouts/nope/promote").status, 404);

  auto created = cp.post(
      "/rollouts",
      {{"modelId", "new:2"}, {"canaryPercent", 50}, {"autoPromote", true}, {"batchIntervalMs", 0}});
  ASSERT_EQ(created.status, 201) << created.text;
  const std::string id = created.body.value("rolloutId", "");
  // Pause and resume.
  EXPECT_EQ(cp.post("/rollouts/" + id + "/pause").body.value("stage", ""), "paused");
  EXPECT_EQ(cp.post("/rollouts/" + id + "/promote").body.value("error", ""),
            "cannot_promote_paused");
  EXPECT_EQ(cp.post("/rollouts/" + id + "/resume").body.value("stage", ""), "canary");
  // A healthy canary is promoted by the reconciler, then the whole fleet.
  ASSERT_EQ(ack(h, "a1", heartbeat_switch(h, "a1"), true).status, 200);
  auto batch = wait_for(cp, "/rollouts/" + id, [](const json& r) {
    return r.value("stage", "") == "batch" && !state_of(r, "a2").is_null();
  });
  ASSERT_EQ(batch.body.value("stage", ""), "batch") << batch.text;
  ASSERT_EQ(ack(h, "a2", heartbeat_switch(h, "a2"), true).status, 200);
  auto full =
      wait_for(cp, "/rollouts/" + id, [](const json& r) { return r.value("stage", "") == "full"; });
  EXPECT_EQ(full.body.value("stage", ""), "full") << full.text;
  EXPECT_EQ(cp.post("/rollouts/" + id + "/promote").body.value("error", ""),
            "already_fully_rolled_out");
}

}  // namespace
}  // namespace edgecoder::control

namespace edgecoder::control {
namespace {

namespace stdfs = std::filesystem;

// The admin dashboard in headless Chromium (tests/control/js/dashboard.mjs with playwright-core):
// sign in through the form, see the agents and the rollout with its buttons, take a screenshot,
// and no console or page errors on the way.
TEST(ControlDashboard, SignsInAndShowsAgentsAndRolloutsWithoutConsoleErrors) {
  const stdfs::path js = stdfs::path(EDGECODER_SOURCE_DIR) / "tests" / "control" / "js";
  ASSERT_TRUE(stdfs::exists("/usr/bin/chromium")) << "chromium is missing (scripts/deps.sh)";
  ASSERT_TRUE(stdfs::exists(js / "node_modules" / "playwright-core"))
      << "npm ci --prefix tests/control/js (scripts/test.sh does)";
  Harness h;
  ControlPlane cp(h.port(), {{"CONTROL_ROLLOUT_POLL_MS", "50"}});
  h.register_agent("laptop-ana",
                   {{"activeModel", "old:1"},
                    {"powerTelemetry", {{"onBattery", true}, {"batteryLevelPct", 64}}}});
  h.register_agent("desk-bo", {{"activeModel", "old:1"}});
  auto created = cp.post("/rollouts", {{"modelId", "new:2"}, {"canaryPercent", 50}});
  ASSERT_EQ(created.status, 201) << created.text;
  const std::string rollout = created.body.value("rolloutId", "");
  ASSERT_EQ(cp.post("/credits/acct-7/adjust", {{"credits", 12}, {"reason", "bug bounty"}}).status,
            200);

  // The page is public and holds no data; its data needs the token.
  auto page = cp.request("GET", "/admin/dashboard", std::nullopt, {});
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.text.find("<form id=\"login-form\""), std::string::npos);
  EXPECT_EQ(page.text.find("laptop-ana"), std::string::npos);
  EXPECT_EQ(cp.request("GET", "/admin/api/dashboard-data", std::nullopt, {}).status, 401);
  auto data = cp.get("/admin/api/dashboard-data");
  ASSERT_EQ(data.status, 200) << data.text;
  EXPECT_EQ(data.body["agents"].value("total", 0), 2);
  EXPECT_EQ(data.body["rollouts"].size(), 1u);
  EXPECT_EQ(data.body["credits"]["recentAdjustments"][0].value("reason", ""), "bug bounty");

  edgecoder::testing::TempDir out;
  const stdfs::path shot = out.path() / "dashboard.png";
  edgecoder::testing::ChildOptions options;
  options.args = {(js / "dashboard.mjs").string(),
                  "http://127.0.0.1:" + std::to_string(cp.port()) + "/admin/dashboard",
                  coordinator::testing::kAdmin,
                  shot.string(),
                  "laptop-ana",
                  rollout};
  options.env = {{"HOME", out.path().string()}};
  options.output_dir = out.path();
  edgecoder::testing::ChildProcess node("/usr/bin/node", options);
  auto code = node.wait(std::chrono::seconds(240));
  ASSERT_EQ(code.value_or(-1), 0) << node.stdout_text() << node.stderr_text();
  json seen = json::parse(node.stdout_text(), nullptr, false);
  ASSERT_TRUE(seen.is_object()) << node.stdout_text() << node.stderr_text();
  ASSERT_FALSE(seen.contains("failure")) << seen.dump(2);
  EXPECT_EQ(seen["consoleErrors"], json::array()) << seen.dump(2);
  EXPECT_EQ(seen["pageErrors"], json::array()) << seen.dump(2);

  bool ana = false;
  for (const auto& row : seen["agents"]) {
    if (row[0] == "laptop-ana") {
      ana = true;
      EXPECT_EQ(row[1], "online");
      EXPECT_EQ(row[2], "debian");
      EXPECT_EQ(row[3], "old:1");
      EXPECT_EQ(row[5], "battery 64%");
    }
  }
  EXPECT_TRUE(ana) << seen["agents"].dump();
  ASSERT_EQ(seen["rollouts"].size(), 1u);
  EXPECT_EQ(seen["rollouts"][0][0], rollout);
  EXPECT_EQ(seen["rollouts"][0][2], "canary");
  EXPECT_EQ(seen["buttons"], json::array({"promote", "rollback"}));
  // The token went into the tab's storage and headers, never into a URL.
  EXPECT_EQ(seen.value("tokenInStorage", ""), coordinator::testing::kAdmin);
  for (const auto& url : seen["urls"]) {
    EXPECT_EQ(url.get<std::string>().find(coordinator::testing::kAdmin), std::string::npos) << url;
  }
  // A real PNG was written.
  std::ifstream png(shot, std::ios::binary);
  std::string magic(8, '\0');
  png.read(magic.data(), 8);
  EXPECT_EQ(magic, std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(stdfs::file_size(shot), 10'000u);
  std::error_code ignored;
  stdfs::copy_file(shot, "control-dashboard.png", stdfs::copy_options::overwrite_existing, ignored);
}

}  // namespace
}  // namespace edgecoder::control

namespace edgecoder::control {
namespace {

TEST(ControlSecurity, TheBlacklistBlocksEveryAgentRouteAndRemovalIsAChainedAuditedEvent) {
  Harness h;
  ControlPlane cp(h.port());
  h.register_agent("a1");
  ASSERT_EQ(h.post("/pull", {{"agentId", "a1"}}).status, 200);

  auto added = cp.post("/security/blacklist", {{"agentId", "a1"},
                                               {"reasonCode", "forged_results"},
                                               {"reason", "returned results it did not compute"}});
  ASSERT_EQ(added.status, 200) << added.text;
  EXPECT_EQ(added.body.value("version", 0), 1);
  const std::string first_hash = added.body["record"].value("eventHash", "");
  EXPECT_EQ(first_hash.size(), 64u);

  // Every agent route refuses it.
  auto reg = h.post(
      "/register", {{"agentId", "a1"}, {"os", "debian"}, {"version", "1"}, {"mode", "swarm-only"}});
  EXPECT_EQ(reg.status, 403) << reg.text;
  EXPECT_EQ(reg.body.value("error", ""), "agent_blacklisted");
  auto hb = h.post("/heartbeat", {{"agentId", "a1"}});
  EXPECT_EQ(hb.status, 200);
  EXPECT_EQ(hb.body.value("ok", true), false);
  EXPECT_EQ(hb.body.value("blacklisted", false), true);
  EXPECT_EQ(hb.body.value("blacklistVersion", 0), 1);
  auto pull = h.post("/pull", {{"agentId", "a1"}});
  EXPECT_EQ(pull.body.value("blocked", false), true) << pull.text;
  EXPECT_TRUE(pull.body["subtask"].is_null());
  auto result = h.post(
      "/result",
      {{"agentId", "a1"}, {"subtaskId", "s"}, {"ok", true}, {"output", "x"}, {"taskId", "t"}});
  EXPECT_EQ(result.status, 403) << result.text;
  // Agents read it with the mesh token; only operators change it.
  auto listed = h.get("/security/blacklist");
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(listed.body["records"][0].value("agentId", ""), "a1");
  EXPECT_EQ(listed.body.value("lastEventHash", ""), first_hash);
  EXPECT_EQ(h.post("/security/blacklist", {{"agentId", "a2"},
                                           {"reasonCode", "manual_review"},
                                           {"reason", "mesh token cannot do this"}})
                .status,
            401);

  for (const json& bad :
       {json{{"agentId", "a2"}, {"reasonCode", "nope"}, {"reason", "bad code"}},
        json{{"agentId", "a2"}, {"reasonCode", "manual_review"}, {"reason", "ab"}},
        json{{"agentId", "a2"},
             {"reasonCode", "manual_review"},
             {"reason", "bad evidence"},
             {"evidenceHashSha256", "zz"}},
        json{{"reasonCode", "manual_review"}, {"reason", "no agent"}}}) {
    EXPECT_EQ(cp.post("/security/blacklist", bad).status, 400) << bad.dump();
  }
  // A reporter's own signature must verify.
  auto reporter = core::crypto::ed25519_generate();
  const json signed_part = {{"agentId", "a2"},
                            {"reasonCode", "abuse_spam"},
                            {"reason", "sent spam through the mesh"},
                            {"evidenceHashSha256", ""},
                            {"reporterId", "peer-7"}};
  auto sig = core::crypto::ed25519_sign(signed_part.dump(), reporter.secret_key);
  json report = signed_part;
  report["reporterPublicKeyPem"] = core::crypto::ed25519_public_key_pem(reporter.public_key);
  report["reporterSignature"] = core::crypto::base64_encode(*sig);
  report["reason"] = "sent spam through the mesh, altered";
  EXPECT_EQ(cp.post("/security/blacklist", report).status, 400);
  report["reason"] = "sent spam through the mesh";
  ASSERT_EQ(cp.post("/security/blacklist", report).status, 200);

  // Removal is an event of the chain, audited, and serves the agent again.
  auto removed =
      cp.request("DELETE", "/security/blacklist/a1", json{{"reason", "appeal upheld"}}, cp.admin());
  ASSERT_EQ(removed.status, 200) << removed.text;
  EXPECT_EQ(removed.body.value("version", 0), 3);
  EXPECT_EQ(h.post("/pull", {{"agentId", "a1"}}).body.value("blocked", false), false);
  EXPECT_EQ(
      cp.request("DELETE", "/security/blacklist/a1", json{{"reason", "again"}}, cp.admin()).status,
      404);

  auto audit = cp.get("/security/blacklist/audit");
  ASSERT_EQ(audit.status, 200) << audit.text;
  EXPECT_EQ(audit.body.value("verified", false), true) << audit.text;
  ASSERT_EQ(audit.body["events"].size(), 3u);
  const json& last = audit.body["events"][2]["event"];
  EXPECT_EQ(last.value("action", ""), "remove");
  EXPECT_EQ(last.value("removesEventHash", ""), first_hash);
  EXPECT_EQ(audit.body["events"][1]["event"].value("reporterSignatureVerified", false), true);
  EXPECT_EQ(audit.body["events"][0].value("publicKeyPem", ""),
            h.get("/identity").body.value("publicKeyPem", "-"));

  std::vector<std::string> actions;
  const auto log = cp.get("/audit");
  for (const auto& a : log.body["records"]) actions.push_back(a.value("action", ""));
  EXPECT_EQ(actions,
            (std::vector<std::string>{"blacklist.add", "blacklist.add", "blacklist.remove"}));
  // The per-agent view gathers it.
  auto view = cp.get("/agents/a1");
  ASSERT_EQ(view.status, 200) << view.text;
  EXPECT_TRUE(view.body["blacklist"].is_null());
  EXPECT_EQ(view.body["operatorActions"].size(), 2u);
  EXPECT_EQ(view.body["agent"].value("agentId", ""), "a1");
  EXPECT_TRUE(view.body["diagnostics"].is_object()) << view.text;
  EXPECT_EQ(cp.get("/agents/nobody").status, 404);

  // Changing a stored event is found by the audit.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((h.data_dir() / "data" / "coordinator.db").c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 30'000);  // the coordinator's sweeper may hold the write lock a moment
  ASSERT_EQ(sqlite3_exec(db,
                         "UPDATE blacklist_events SET record_json = replace(record_json, "
                         "'did not compute', 'did compute') WHERE seq = 1",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto tampered = cp.get("/security/blacklist/audit");
  EXPECT_EQ(tampered.body.value("verified", true), false);
  EXPECT_NE(tampered.body["problems"].dump().find("event 1: hash mismatch"), std::string::npos)
      << tampered.text;
}

}  // namespace
}  // namespace edgecoder::control

namespace edgecoder::control {
namespace {

TEST(ControlAgents, AnOperatorsModeWinsOverTheDeclaredOneAndSurvivesReRegistration) {
  Harness h;
  ControlPlane cp(h.port());
  h.register_agent("a1");  // declares swarm-only
  auto set = cp.post("/agents/a1/mode", {{"mode", "ide-enabled"}});
  ASSERT_EQ(set.status, 200) << set.text;
  EXPECT_EQ(set.body["agent"].value("mode", ""), "ide-enabled");
  EXPECT_EQ(set.body["agent"].value("declaredMode", ""), "swarm-only");
  // The agent is told at registration, and registering again does not undo it.
  EXPECT_EQ(h.register_agent("a1").value("mode", ""), "ide-enabled");
  auto capacity = h.get("/capacity");
  EXPECT_EQ(capacity.body["totals"].value("ideEnabledCount", -1), 1) << capacity.text;
  EXPECT_EQ(capacity.body["totals"].value("swarmEnabledCount", -1), 0);
  EXPECT_EQ(cp.get("/agents/a1").body["agent"].value("mode", ""), "ide-enabled");
  // Back to what the agent declares.
  ASSERT_EQ(cp.post("/agents/a1/mode", {{"mode", "declared"}}).status, 200);
  EXPECT_EQ(h.register_agent("a1").value("mode", ""), "swarm-only");
  EXPECT_EQ(cp.post("/agents/a1/mode", {{"mode", "turbo"}}).status, 400);
  EXPECT_EQ(cp.post("/agents/nobody/mode", {{"mode", "swarm-only"}}).status, 404);
  const auto audit = cp.get("/audit");
  ASSERT_EQ(audit.body["records"].size(), 2u) << audit.text;
  EXPECT_EQ(audit.body["records"][0].value("action", ""), "agent.mode");
  EXPECT_EQ(audit.body["records"][0]["detail"].value("mode", ""), "ide-enabled");
}

}  // namespace
}  // namespace edgecoder::control
