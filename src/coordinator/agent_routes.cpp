// Agent lifecycle: POST /register, /heartbeat, /pull, /result, /release, /agent/diagnostics
// (+ GET). Fencing and lease state live in the store; these handlers translate.
#include "api/coordinator.h"
#include "api/envelope.h"
#include "coordinator/envelopes.h"
#include "coordinator/service.h"
#include "core/crypto.h"
#include "core/log.h"

namespace edgecoder::coordinator {

namespace detail {

net::Response agent_unknown(const std::string& agent_id) {
  // The iOS client looks for "mesh_unauthorized" to re-register.
  return error_response(401, "mesh_unauthorized", "agent " + agent_id + " is not registered",
                        {{"reason", "agent_not_registered"}});
}

// The blacklist entry's reason when the agent is blacklisted.
asio::awaitable<std::optional<std::string>> blacklisted(ServicePtr svc, std::string agent_id) {
  store::Store* st = svc->store.get();
  auto call = st->run([st, agent_id] { return blacklist_reason(*st, agent_id); });
  co_return co_await std::move(call);
}

// Checks the request's Ed25519 signature (agent_security.cpp); nullopt = go on.
// Not a coroutine: the request is read before the caller awaits.
asio::awaitable<std::optional<net::Response>> check_signature(ServicePtr svc,
                                                              const net::Request& request,
                                                              std::string body_agent_id) {
  return verify_agent_request(std::move(svc), signed_request_of(request), std::move(body_agent_id));
}

// The agent that held `attempt` of the subtask when it was not `agent_id` (or a note that the
// attempt was never issued): a result for it is not a late result of honest work but a forged
// one. nullopt when it cannot be told (no attempt sent, unknown task, a requeued lease).
asio::awaitable<std::optional<std::string>> attempt_held_by_other(ServicePtr svc,
                                                                  std::string task_id,
                                                                  std::string subtask_id,
                                                                  std::string agent_id,
                                                                  int attempt) {
  store::Store* st = svc->store.get();
  auto call = st->run([st, task_id, subtask_id, agent_id, attempt]() -> std::optional<std::string> {
    if (attempt <= 0 || task_id.empty()) return std::nullopt;
    auto task = st->get_task(task_id);
    if (!task) return std::nullopt;
    for (const auto& sub : task->subtasks) {
      if (sub.id != subtask_id) continue;
      if (attempt > sub.attempt) return std::string("attempt never issued");
      if (sub.attempt != attempt) return std::nullopt;  // an older lease: possibly its own
      if (sub.state == store::SubtaskState::leased && !sub.holder.empty() &&
          sub.holder != agent_id) {
        return sub.holder;
      }
      if (sub.state == store::SubtaskState::completed) {
        auto done = st->get_result(subtask_id);
        if (done && done->attempt == attempt && done->agent_id != agent_id) return done->agent_id;
      }
    }
    return std::nullopt;
  });
  co_return co_await std::move(call);
}

// Adds updatedAtMs when the agent did not stamp its telemetry.
std::string telemetry_text(const std::optional<nlohmann::json>& telemetry, std::int64_t now) {
  if (!telemetry) return "";
  nlohmann::json t = *telemetry;
  if (!t.contains("updatedAtMs")) t["updatedAtMs"] = now;
  return t.dump();
}

std::string runtime_text(const std::optional<nlohmann::json>& param_size,
                         std::optional<bool> swapping) {
  if (!param_size && !swapping) return "";
  nlohmann::json r = nlohmann::json::object();
  if (param_size) r["activeModelParamSize"] = *param_size;
  if (swapping) r["modelSwapInProgress"] = *swapping;
  return r.dump();
}

// The context block of upstream-coordinator.md §3.6 followed by the subtask's own input.
std::string input_with_context(const store::Lease& lease) {
  if (lease.dependencies.empty()) return lease.subtask.input;
  std::string out = "[Context from previous subtasks]\n";
  for (std::size_t i = 0; i < lease.dependencies.size(); ++i) {
    const auto& d = lease.dependencies[i];
    if (!d.has_result) continue;
    out += "Subtask " + std::to_string(i + 1) + " result: " + d.output + "\n";
  }
  out += "\n[Your task]\n" + lease.subtask.input;
  return out;
}

asio::awaitable<net::Response> agent_register(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  auto parsed = api::parse_register(*body);
  if (!parsed) co_return net::Response::error(parsed.error());
  api::RegisterRequest q = std::move(*parsed);
  const bool mesh_ok = has_mesh_token(*svc, request);
  if (!mesh_ok && q.registration_token.empty()) {
    co_return error_response(401, "mesh_unauthorized",
                             "/register needs x-mesh-token or a registrationToken");
  }
  {
    auto check = refuse_blacklisted(svc, q.agent_id);
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  store::AgentRegistration reg;
  reg.info.id = q.agent_id;
  reg.info.os = q.os;
  reg.info.version = q.version;
  reg.info.mode = q.mode;
  reg.info.client_type = q.client_type;
  reg.info.max_concurrent_tasks = q.max_concurrent_tasks;
  reg.info.sandbox_mode = q.sandbox_mode;
  reg.info.active_model = q.active_model;
  reg.info.public_key = q.public_key_pem;
  reg.info.languages = q.languages;
  nlohmann::json meta = {{"localModelProvider", q.local_model_provider}};
  if (!q.device_id.empty()) meta["deviceId"] = q.device_id;
  if (!q.x25519_public_key.empty()) meta["x25519PublicKey"] = q.x25519_public_key;
  if (q.binary_integrity) meta["binaryIntegrity"] = *q.binary_integrity;
  reg.info.metadata_json = meta.dump();
  reg.info.telemetry_json = telemetry_text(q.power_telemetry, svc->now());
  reg.info.runtime_json = runtime_text(q.active_model_param_size, std::nullopt);
  if (!q.registration_token.empty()) {
    reg.token_hash = core::crypto::sha256_hex(q.registration_token);
  }
  reg.auto_approve = svc->options.auto_approve && mesh_ok && !svc->enterprise_overlay();
  store::Store* st = svc->store.get();
  auto call = st->run([st, reg] { return st->register_agent(reg); });
  auto outcome = co_await std::move(call);
  if (!outcome) co_return net::Response::error(outcome.error());
  if (outcome->token == store::TokenCheck::invalid) {
    co_return error_response(403, "registration_token_invalid",
                             "the registration token is unknown or revoked",
                             {{"reason", "registration_token_invalid"}});
  }
  const store::Agent& agent = outcome->agent;
  if (outcome->created) {
    core::log::info("coordinator", "agent_registered",
                    {{"agent", agent.info.id},
                     {"approval", store::approval_name(agent.approval)},
                     {"client", agent.info.client_type}});
  }
  svc->metrics.registrations->inc();
  {
    // Registration storms are evidence (BHV008); the threshold is far above a crash loop.
    nlohmann::json detail = {{"check", "registration"}, {"client", agent.info.client_type}};
    auto note = record_evidence(svc, agent.info.id, "registration", std::move(detail));
    co_await std::move(note);
  }
  if (agent.approval == store::Approval::denied) {
    co_return error_response(403, "agent_denied", "an operator denied agent " + agent.info.id,
                             {{"reason", "denied_by_operator"}, {"approval", "denied"}});
  }
  nlohmann::json out = {{"policy", execution_policy(agent.info.max_concurrent_tasks)},
                        {"mode", agent.mode()},
                        {"approval", store::approval_name(agent.approval)},
                        {"languages", agent_languages(agent)},
                        {"sandboxMode", agent.info.sandbox_mode}};
  if (auto reason = refusal_reason(*svc, agent)) {
    out["accepted"] = false;
    out["reason"] = *reason;
  } else {
    out["accepted"] = true;
    if (!svc->options.mesh_token.empty()) out["meshToken"] = svc->options.mesh_token;
  }
  co_return net::Response::json(200, out);
}

asio::awaitable<net::Response> agent_heartbeat(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  auto parsed = api::parse_heartbeat(*body);
  if (!parsed) co_return net::Response::error(parsed.error());
  {
    auto check = check_signature(svc, request, parsed->agent_id);
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  store::AgentHeartbeat hb;
  hb.agent_id = parsed->agent_id;
  hb.active_model = parsed->active_model;
  hb.telemetry_json = telemetry_text(parsed->power_telemetry, svc->now());
  hb.runtime_json = runtime_text(parsed->active_model_param_size, parsed->model_swap_in_progress);
  hb.sandbox_mode = parsed->sandbox_mode;
  hb.lease_budget_ms = svc->options.lease_budget_ms;
  store::Store* st = svc->store.get();
  {
    // A blacklisted agent's leases are not renewed; the answer keeps the upstream shape.
    auto check = blacklisted(svc, hb.agent_id);
    if (auto reason = co_await std::move(check)) {
      auto head_call = st->run([st] { return st->blacklist_head(); });
      auto head = co_await std::move(head_call);
      co_return net::Response::json(200,
                                    {{"ok", false},
                                     {"blacklisted", true},
                                     {"reason", *reason},
                                     {"blacklistVersion", head ? head->second : std::int64_t{0}}});
    }
  }
  auto call = st->run([st, hb] { return st->heartbeat(hb); });
  auto outcome = co_await std::move(call);
  if (!outcome) {
    if (outcome.error().code == core::Errc::not_found) co_return agent_unknown(hb.agent_id);
    co_return net::Response::error(outcome.error());
  }
  const store::Agent& agent = outcome->agent;
  if (auto refused = refuse_agent(*svc, agent)) co_return std::move(*refused);
  const std::string agent_id = agent.info.id;
  auto get_switch = st->run([st, agent_id] { return st->get_orchestration(agent_id); });
  auto model_switch = co_await std::move(get_switch);
  if (!model_switch) co_return net::Response::error(model_switch.error());
  auto telemetry = nlohmann::json::parse(agent.info.telemetry_json, nullptr, false);
  PowerInputs in{agent.info.os, telemetry.is_object() ? telemetry : nlohmann::json(),
                 agent.last_claim_ms, svc->now()};
  nlohmann::json out = {
      {"ok", true},
      {"requeued", 0},
      {"renewedLeases", outcome->renewed},
      {"policy", execution_policy(agent.info.max_concurrent_tasks)},
      {"orchestration", *model_switch ? orchestration_json(**model_switch) : nlohmann::json()},
      {"blacklist", {{"version", 0}, {"agents", nlohmann::json::array()}}},
      {"approval", "approved"},
      {"powerPolicy", to_json(evaluate_power(in, svc->options.power))}};
  {
    // tunnelInvites, tunnelCloseNotices, directWorkOffers (mesh_routes.cpp).
    auto mesh_call = agent_mesh_heartbeat(svc, agent_id);
    auto mesh = co_await std::move(mesh_call);
    if (!mesh) co_return net::Response::error(mesh.error());
    out.update(*mesh);
  }
  co_return net::Response::json(200, out);
}

asio::awaitable<net::Response> agent_pull(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  auto parsed = api::parse_pull(*body);
  if (!parsed) co_return net::Response::error(parsed.error());
  {
    auto check = check_signature(svc, request, parsed->agent_id);
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  const std::string agent_id = parsed->agent_id;
  store::Store* st = svc->store.get();
  auto get = st->run([st, agent_id] { return st->get_agent(agent_id); });
  auto agent = co_await std::move(get);
  if (!agent) {
    if (agent.error().code == core::Errc::not_found) co_return agent_unknown(agent_id);
    co_return net::Response::error(agent.error());
  }
  if (auto refused = refuse_agent(*svc, *agent)) co_return std::move(*refused);
  {
    auto check = blacklisted(svc, agent_id);
    if (auto reason = co_await std::move(check)) {
      co_return net::Response::json(
          200,
          {{"subtask", nullptr}, {"blocked", true}, {"blacklisted", true}, {"reason", *reason}});
    }
  }
  auto telemetry = nlohmann::json::parse(agent->info.telemetry_json, nullptr, false);
  PowerInputs in{agent->info.os, telemetry.is_object() ? telemetry : nlohmann::json(),
                 agent->last_claim_ms, svc->now()};
  PowerDecision power = evaluate_power(in, svc->options.power);
  if (!power.allow_coordinator_tasks || power.defer_ms > 0) {
    nlohmann::json out = {{"subtask", nullptr}, {"powerDeferred", true}, {"reason", power.reason}};
    if (power.defer_ms > 0) out["deferMs"] = power.defer_ms;
    co_return net::Response::json(200, out);
  }
  store::ClaimRequest claim;
  claim.agent_id = agent_id;
  claim.active_model = agent->info.active_model;
  claim.lease_budget_ms = svc->options.lease_budget_ms;
  claim.languages = agent_languages(*agent);
  claim.sandboxed = agent->info.sandbox_mode != "none";
  claim.max_concurrent = agent->info.max_concurrent_tasks;
  if (power.small_tasks_only) claim.max_timeout_ms = kSmallTaskTimeoutMs;
  if (svc->options.envelopes) {
    // Stored with the lease in the claim's transaction: any coordinator can open the result.
    const std::string agent_key = agent_x25519_key(*agent);
    if (!agent_key.empty()) claim.lease_key = new_lease_key(agent_key);
  }
  auto call = st->run([st, claim] { return st->claim_next(claim); });
  auto lease = co_await std::move(call);
  if (!lease) co_return net::Response::error(lease.error());
  if (!lease->has_value()) co_return net::Response::json(200, {{"subtask", nullptr}});
  const store::Lease& l = **lease;
  svc->metrics.claims->inc();
  auto payload = nlohmann::json::parse(l.subtask.payload_json, nullptr, false);
  api::WireSubtask wire = api::wire_subtask_from_json(payload);
  wire.id = l.subtask.id;
  wire.task_id = l.subtask.task_id;
  wire.kind = l.subtask.kind;
  wire.language = l.subtask.language;
  wire.timeout_ms = l.subtask.timeout_ms;
  wire.subtask_index = l.subtask.index;
  wire.depends_on = l.subtask.depends_on;
  wire.input = input_with_context(l);
  wire.attempt = l.attempt;
  wire.lease_expires_at_ms = l.expires_at_ms;
  if (!claim.lease_key.empty()) {
    auto envelope = seal_for_lease(wire, claim.lease_key);
    if (!envelope) {
      // Not expected (the key was checked at /register): hand the lease back at once.
      core::log::error(
          "coordinator", "envelope_seal_failed",
          {{"subtask", wire.id}, {"agent", agent_id}, {"detail", envelope.error().detail}});
      store::ReleaseRequest rel{wire.id, agent_id, wire.attempt, "envelope_seal_failed"};
      auto back = st->run([st, rel] { return st->release_lease(rel); });
      auto released = co_await std::move(back);
      (void)released;
      co_return net::Response::error(envelope.error());
    }
    svc->metrics.envelopes_sealed->inc();
    co_return net::Response::json(200, {{"subtask", nullptr}, {"envelope", std::move(*envelope)}});
  }
  co_return net::Response::json(200, {{"subtask", api::to_json(wire)}});
}

asio::awaitable<net::Response> agent_result(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  auto parsed = api::parse_result(*body);
  if (!parsed) co_return net::Response::error(parsed.error());
  {
    auto check = check_signature(svc, request, parsed->agent_id);
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  store::Store* st = svc->store.get();
  const std::string agent_id = parsed->agent_id;
  auto get = st->run([st, agent_id] { return st->get_agent(agent_id); });
  auto agent = co_await std::move(get);
  if (!agent) {
    if (agent.error().code == core::Errc::not_found) co_return agent_unknown(agent_id);
    co_return net::Response::error(agent.error());
  }
  if (auto refused = refuse_agent(*svc, *agent)) co_return std::move(*refused);
  {
    auto check = refuse_blacklisted(svc, agent_id);
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  if (parsed->encrypted) {
    const std::string subtask_id = parsed->subtask_id;
    auto get_key = st->run([st, subtask_id] { return st->get_lease_key(subtask_id); });
    auto lease_key = co_await std::move(get_key);
    if (!lease_key) {
      if (lease_key.error().code == core::Errc::not_found) {
        co_return error_response(404, "subtask_not_found", lease_key.error().detail);
      }
      co_return net::Response::error(lease_key.error());
    }
    auto opened = open_leased_result(*lease_key, *parsed, *body);
    if (!opened) {
      if (opened.error().code == core::Errc::conflict) svc->metrics.results_stale->inc();
      if (opened.error().wire() == api::kEnvelopeDecryptFailed) {
        svc->metrics.envelope_results_refused->inc();
      }
      co_return net::Response::error(opened.error());
    }
    svc->metrics.envelope_results_opened->inc();
    parsed = api::parse_result(*opened);
    if (!parsed) co_return net::Response::error(parsed.error());
  }
  store::ResultReport report;
  report.subtask_id = parsed->subtask_id;
  report.agent_id = parsed->agent_id;
  report.attempt = parsed->attempt;
  report.ok = parsed->ok;
  report.output = parsed->output;
  report.error = parsed->error;
  report.duration_ms = parsed->duration_ms;
  report.iterations = parsed->iterations;
  report.escalated = parsed->escalated;
  const std::string task_id = parsed->task_id;
  const std::string output_sha256 = core::crypto::sha256_hex(report.output);
  {
    auto load_call = current_load_multiplier(svc);
    const double load = co_await std::move(load_call);
    report.earn = make_earning(report.agent_id, report.ok, report.duration_ms, load);
  }
  auto call = st->run([st, report] { return st->record_result(report); });
  auto outcome = co_await std::move(call);
  if (!outcome) {
    if (outcome.error().code == core::Errc::conflict) {
      svc->metrics.results_stale->inc();
      auto holder_call =
          attempt_held_by_other(svc, task_id, report.subtask_id, agent_id, report.attempt);
      auto holder = co_await std::move(holder_call);
      if (holder) {
        nlohmann::json detail = {{"check", "result_for_foreign_attempt"},
                                 {"subtaskId", report.subtask_id},
                                 {"taskId", task_id},
                                 {"attempt", report.attempt},
                                 {"heldBy", *holder}};
        auto note = record_evidence(svc, agent_id, "forged_result", std::move(detail));
        co_await std::move(note);
      }
    }
    if (outcome.error().code == core::Errc::not_found) {
      co_return error_response(404, "subtask_not_found", outcome.error().detail);
    }
    co_return net::Response::error(outcome.error());
  }
  if (*outcome == store::RecordOutcome::duplicate) {
    svc->metrics.results_duplicate->inc();
    co_return net::Response::json(200, {{"ok", true}, {"duplicate", true}});
  }
  svc->metrics.results_accepted->inc();
  {
    auto note =
        note_result(svc, agent_id, output_sha256, report.output.empty(), report.duration_ms);
    co_await std::move(note);
  }
  co_return net::Response::json(200, {{"ok", true}});
}

asio::awaitable<net::Response> agent_release(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  auto parsed = api::parse_release(*body);
  if (!parsed) co_return net::Response::error(parsed.error());
  {
    auto check = check_signature(svc, request, parsed->agent_id);
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  {
    auto check = refuse_blacklisted(svc, parsed->agent_id);
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  store::ReleaseRequest rel;
  rel.agent_id = parsed->agent_id;
  rel.subtask_id = parsed->subtask_id;
  rel.attempt = parsed->attempt;
  rel.reason = parsed->reason;
  store::Store* st = svc->store.get();
  auto call = st->run([st, rel] { return st->release_lease(rel); });
  auto outcome = co_await std::move(call);
  if (!outcome) {
    if (outcome.error().code == core::Errc::not_found) {
      co_return error_response(404, "subtask_not_found", outcome.error().detail);
    }
    co_return net::Response::error(outcome.error());
  }
  co_return net::Response::json(200, {{"ok", true}, {"released", true}});
}

asio::awaitable<net::Response> agent_post_diagnostics(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  auto parsed = api::parse_diagnostics(*body);
  if (!parsed) co_return net::Response::error(parsed.error());
  {
    auto check = refuse_blacklisted(svc, parsed->agent_id);
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  std::vector<store::DiagnosticEvent> events;
  for (const auto& e : parsed->events) {
    events.push_back(store::DiagnosticEvent{0, e.event_at_ms, e.message, parsed->source});
  }
  store::Store* st = svc->store.get();
  const std::string agent_id = parsed->agent_id;
  const int keep = svc->options.diagnostics_keep;
  auto call = st->run(
      [st, agent_id, events, keep] { return st->append_diagnostics(agent_id, events, keep); });
  auto stored = co_await std::move(call);
  if (!stored) {
    if (stored.error().code == core::Errc::not_found) co_return agent_unknown(agent_id);
    co_return net::Response::error(stored.error());
  }
  co_return net::Response::json(200, {{"ok", true}, {"stored", *stored}});
}

asio::awaitable<net::Response> agent_get_diagnostics(ServicePtr svc, net::Request request) {
  const std::string agent_id = request.param("agentId");
  store::Store* st = svc->store.get();
  const int keep = svc->options.diagnostics_keep;
  auto call = st->run([st, agent_id, keep] { return st->list_diagnostics(agent_id, keep); });
  auto events = co_await std::move(call);
  if (!events) co_return net::Response::error(events.error());
  nlohmann::json list = nlohmann::json::array();
  for (const auto& e : *events) {
    nlohmann::json j = {{"eventAtMs", e.event_at_ms}, {"message", e.message}};
    if (!e.source.empty()) j["source"] = e.source;
    list.push_back(std::move(j));
  }
  nlohmann::json out = {
      {"ok", true}, {"agentId", agent_id}, {"events", list}, {"count", events->size()}};
  if (!events->empty()) out["latestEventAtMs"] = events->front().event_at_ms;
  co_return net::Response::json(200, out);
}

}  // namespace detail

asio::awaitable<std::optional<net::Response>> refuse_blacklisted(ServicePtr svc,
                                                                 std::string agent_id) {
  auto check = detail::blacklisted(svc, agent_id);
  auto reason = co_await std::move(check);
  if (!reason) co_return std::nullopt;
  co_return error_response(403, "agent_blacklisted", "agent " + agent_id + " is blacklisted",
                           {{"blacklisted", true}, {"reason", *reason}});
}

void add_agent_routes(net::Router& router, ServicePtr svc) {
  router.add("POST", "/register",
             [svc](net::Request r) { return detail::agent_register(svc, std::move(r)); });
  router.add("POST", "/heartbeat",
             [svc](net::Request r) { return detail::agent_heartbeat(svc, std::move(r)); });
  router.add("POST", "/pull",
             [svc](net::Request r) { return detail::agent_pull(svc, std::move(r)); });
  router.add("POST", "/result",
             [svc](net::Request r) { return detail::agent_result(svc, std::move(r)); });
  router.add("POST", "/release",
             [svc](net::Request r) { return detail::agent_release(svc, std::move(r)); });
  router.add("POST", "/agent/diagnostics",
             [svc](net::Request r) { return detail::agent_post_diagnostics(svc, std::move(r)); });
  router.add("GET", "/agent/diagnostics/:agentId",
             [svc](net::Request r) { return detail::agent_get_diagnostics(svc, std::move(r)); });
}

}  // namespace edgecoder::coordinator
