// Internal to src/control: the state the route handlers share and the two things nearly every
// operator route does: call the coordinator's operator API, and write the audit record of a
// change it made there.
// Thread-safety: Service is constant after mount() apart from its thread-safe members.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/result.h"
#include "net/client.h"
#include "net/client_address.h"
#include "net/router.h"
#include "store/store.h"

namespace edgecoder::control {

namespace asio = boost::asio;

struct ControlOptions {
  net::OperatorGate gate;       // ADMIN_API_TOKEN, ALLOWED_ADMIN_IPS, TRUSTED_PROXIES
  std::string coordinator_url;  // COORDINATOR_URL (its first entry), default the local one
  std::int64_t coordinator_timeout_ms = 10'000;
  std::int64_t rollout_poll_ms = 2'000;  // CONTROL_ROLLOUT_POLL_MS: the rollout reconciler
};

core::Result<ControlOptions> control_options(const core::Config& config);

class Service {
 public:
  Service(ControlOptions options, std::unique_ptr<store::Store> store,
          std::function<std::int64_t()> clock, boost::asio::io_context& io);

  std::int64_t now() const { return clock_(); }

  const ControlOptions options;
  const std::unique_ptr<store::Store> store;
  const std::unique_ptr<net::HttpClient> http;
  std::atomic<bool> stopping{false};  // set when the node drains: no new reconciler pass

 private:
  const std::function<std::int64_t()> clock_;
};

using ServicePtr = std::shared_ptr<Service>;

// What the coordinator answered: its status and JSON body (null when the body was not JSON).
struct Upstream {
  int status = 0;
  nlohmann::json body;
};

// One call to the coordinator with the operator credential. An unreachable coordinator is an
// error with wire code "coordinator_unreachable" (502).
asio::awaitable<core::Result<Upstream>> call_coordinator(ServicePtr svc, std::string method,
                                                         std::string path, std::string body);

// The coordinator's answer passed on as it is (status and body).
net::Response relay(const Upstream& upstream);
// The response for a failed call_coordinator.
net::Response unreachable(const core::Error& error);

// The audit record of one operator change: who (the operator credential, plus the name the
// caller gives in x-edgecoder-operator, if any), what (action, target, detail), when, and from
// where (the client address seen through TRUSTED_PROXIES).
struct AuditFacts {
  std::string action;
  std::string target;
  nlohmann::json detail = nlohmann::json::object();
};

// Appends the audit record of a change (who: the credential and x-edgecoder-operator; from
// where: the client address). A failure is logged with the whole record.
asio::awaitable<core::Result<std::int64_t>> record_change(ServicePtr svc, net::Request request,
                                                          AuditFacts facts);
// The 500 for a change applied whose audit record could not be written.
net::Response audit_failed(const core::Error& error);

// Makes a change through the coordinator: relays its answer and, when it succeeded (2xx),
// appends the audit record first and adds "auditId" to the answer. `complete` may fill in facts
// only the answer holds (the id of a created token). If the audit record cannot be written the
// answer is 500 audit_write_failed (the change itself was applied; the log line keeps the
// record).
asio::awaitable<net::Response> operator_change(
    ServicePtr svc, net::Request request, std::string method, std::string path, std::string body,
    AuditFacts facts,
    std::function<void(const nlohmann::json& answer, AuditFacts& facts)> complete = {});

// Parses the JSON body (400 on malformed JSON); an empty body is an empty object.
core::Result<nlohmann::json> json_body(const net::Request& request);

// Route registration, one function per file.
void add_operator_routes(net::Router& router, ServicePtr svc);
void add_rollout_routes(net::Router& router, ServicePtr svc);
void add_dashboard_routes(net::Router& router, ServicePtr svc);

// Every rollout as GET /rollouts lists it (rollouts.cpp); runs on the store's thread.
core::Result<nlohmann::json> list_rollouts_json(store::Store& st);

// One pass of the rollout reconciler over every rollout (rollouts.cpp).
asio::awaitable<void> reconcile_rollouts(ServicePtr svc);

}  // namespace edgecoder::control
