// mount(): options, the store, the operator gate (ARCHITECTURE.md §6), and the helpers every
// operator route uses: the coordinator call and the audited change.
#include <chrono>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "control/control.h"
#include "control/service.h"
#include "core/log.h"
#include "net/http.h"

namespace edgecoder::control {

namespace {

// Open to everyone: liveness, readiness, metrics (the standard routes guard /metrics
// themselves), the discovery feed agents read, and the dashboard page (it holds no data and asks
// for the token; its data route is an operator route).
bool is_public(const std::string& route) {
  return route == "/health" || route == "/ready" || route == "/metrics" ||
         route == "/network/coordinators" || route == "/admin/dashboard";
}

// Who made a change: the operator credential, and the name the caller gives, if any.
std::string audit_actor(const net::Request& request) {
  std::string actor = "operator";
  if (auto name = request.header("x-edgecoder-operator")) {
    std::string clean;
    for (char c : name->substr(0, 64)) {
      if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) clean.push_back(c);
    }
    if (!clean.empty()) actor += ":" + clean;
  }
  return actor;
}

}  // namespace

core::Result<ControlOptions> control_options(const core::Config& config) {
  ControlOptions o;
  auto gate = net::operator_gate(config);
  if (!gate) return gate.error();
  o.gate = std::move(*gate);
  std::string url = config.settings.get_or("COORDINATOR_URL", "");
  url = url.substr(0, url.find(','));
  while (!url.empty() && (url.back() == '/' || url.back() == ' ')) url.pop_back();
  url.erase(0, std::min(url.size(), url.find_first_not_of(' ')));
  if (url.empty()) {
    url = "http://127.0.0.1:" + std::to_string(config.ports.at(core::Service::coordinator));
  }
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    return core::make_error(core::Errc::invalid_argument,
                            "COORDINATOR_URL: '" + url + "' must start with http:// or https://");
  }
  o.coordinator_url = std::move(url);
  auto poll = config.settings.get_int("CONTROL_ROLLOUT_POLL_MS", 20, 3'600'000);
  if (!poll) return poll.error();
  o.rollout_poll_ms = *poll;
  return o;
}

Service::Service(ControlOptions opts, std::unique_ptr<store::Store> st,
                 std::function<std::int64_t()> clock, boost::asio::io_context& io)
    : options(std::move(opts)),
      store(std::move(st)),
      http(std::make_unique<net::HttpClient>(io.get_executor())),
      clock_(store::clock_or_system(std::move(clock))) {}

asio::awaitable<core::Result<Upstream>> call_coordinator(ServicePtr svc, std::string method,
                                                         std::string path, std::string body) {
  net::ClientRequest r;
  r.method = std::move(method);
  r.url = svc->options.coordinator_url + path;
  if (!svc->options.gate.token.empty())
    r.headers.emplace_back("x-admin-token", svc->options.gate.token);
  if (!body.empty()) {
    r.headers.emplace_back("content-type", "application/json");
    r.body = std::move(body);
  }
  r.total_timeout = std::chrono::milliseconds(svc->options.coordinator_timeout_ms);
  auto call = svc->http->request(std::move(r));
  auto reply = co_await std::move(call);
  if (!reply) {
    co_return core::Error(core::Errc::unavailable, "coordinator_unreachable",
                          "the coordinator at " + svc->options.coordinator_url +
                              " did not answer: " + reply.error().detail);
  }
  co_return Upstream{reply->status, nlohmann::json::parse(reply->body, nullptr, false)};
}

net::Response relay(const Upstream& upstream) {
  if (upstream.body.is_discarded()) {
    return net::Response::error(
        502, "coordinator_bad_reply",
        "the coordinator answered " + std::to_string(upstream.status) + " without a JSON body");
  }
  return net::Response::json(upstream.status, upstream.body);
}

net::Response unreachable(const core::Error& error) {
  return net::Response::error(502, "coordinator_unreachable", error.detail);
}

asio::awaitable<core::Result<std::int64_t>> record_change(ServicePtr svc, net::Request request,
                                                          AuditFacts facts) {
  store::AuditRecord record;
  record.actor = audit_actor(request);
  record.action = facts.action;
  record.target = facts.target;
  nlohmann::json detail = facts.detail;
  detail["from"] = net::client_address(request, svc->options.gate.trusted_proxies);
  detail["requestId"] = request.request_id;
  record.detail_json = detail.dump();
  store::Store* st = svc->store.get();
  auto append = st->run([st, record] { return st->append_audit(record); });
  auto id = co_await std::move(append);
  if (!id) {
    core::log::error("control", "audit_write_failed",
                     {{"action", record.action},
                      {"target", record.target},
                      {"actor", record.actor},
                      {"detail", record.detail_json},
                      {"error", id.error().detail}});
    co_return id.error();
  }
  core::log::info("control", "operator_change",
                  {{"action", record.action}, {"target", record.target}, {"audit_id", *id}});
  co_return *id;
}

net::Response audit_failed(const core::Error& error) {
  return net::Response::error(500, "audit_write_failed",
                              "the change was applied but its audit record could not be "
                              "written: " +
                                  error.detail);
}

asio::awaitable<net::Response> operator_change(
    ServicePtr svc, net::Request request, std::string method, std::string path, std::string body,
    AuditFacts facts, std::function<void(const nlohmann::json&, AuditFacts&)> complete) {
  auto call = call_coordinator(svc, std::move(method), std::move(path), std::move(body));
  auto reply = co_await std::move(call);
  if (!reply) co_return unreachable(reply.error());
  if (reply->status < 200 || reply->status >= 300 || !reply->body.is_object()) {
    co_return relay(*reply);
  }
  if (complete) complete(reply->body, facts);
  auto record = record_change(svc, std::move(request), std::move(facts));
  auto id = co_await std::move(record);
  if (!id) co_return audit_failed(id.error());
  nlohmann::json answer = reply->body;
  answer["auditId"] = *id;
  co_return net::Response::json(reply->status, answer);
}

core::Result<nlohmann::json> json_body(const net::Request& request) {
  if (request.body.empty()) return nlohmann::json::object();
  return net::parse_json_body(request);
}

namespace {

// Runs the rollout reconciler every `every` until the service is gone or draining.
asio::awaitable<void> rollout_loop(std::weak_ptr<Service> weak, std::chrono::milliseconds every) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (true) {
    timer.expires_after(every);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    auto svc = weak.lock();
    if (!svc || svc->stopping) co_return;
    try {
      auto pass = reconcile_rollouts(svc);
      co_await std::move(pass);
    } catch (const std::exception& e) {
      core::log::error("control", "rollout_reconcile_failed", {{"detail", e.what()}});
    }
  }
}

}  // namespace

core::Result<Mounted> mount(const core::Config& config, boost::asio::io_context& io,
                            net::Router& router, core::metrics::Registry& registry,
                            MountOverrides overrides) {
  (void)registry;
  auto options = control_options(config);
  if (!options) return options.error();
  std::unique_ptr<store::Store> st = std::move(overrides.store);
  if (!st) {
    auto opened = store::open_store(config, store::ServiceName::control_plane);
    if (!opened) return opened.error();
    st = std::move(*opened);
  }
  if (options->gate.token.empty()) {
    core::log::warn("control", "INSECURE_DEV_MODE",
                    {{"detail", "ADMIN_API_TOKEN is unset: operator routes accept every caller"}});
  }
  auto svc =
      std::make_shared<Service>(std::move(*options), std::move(st), std::move(overrides.clock), io);
  router.use([svc](const net::Request& request) -> std::optional<net::Response> {
    if (is_public(request.route)) return std::nullopt;
    return net::check_operator(svc->options.gate, request);
  });
  add_operator_routes(router, svc);
  add_rollout_routes(router, svc);
  add_dashboard_routes(router, svc);
  asio::co_spawn(io, rollout_loop(svc, std::chrono::milliseconds(svc->options.rollout_poll_ms)),
                 asio::detached);
  core::log::info(
      "control", "mounted",
      {{"store", svc->store->describe()}, {"coordinator_url", svc->options.coordinator_url}});
  Mounted m;
  std::weak_ptr<Service> weak = svc;
  m.ready_check = [weak]() -> core::Result<void> {
    auto s = weak.lock();
    if (!s) return core::Error(core::Errc::unavailable, "stopped", "control plane stopped");
    return store::check_ready(*s->store);
  };
  m.on_drain = [weak] {
    if (auto s = weak.lock()) s->stopping = true;
  };
  m.on_stopped = [weak] {
    if (auto s = weak.lock()) s->store->wait_idle();
  };
  m.state = std::move(svc);
  return m;
}

}  // namespace edgecoder::control
