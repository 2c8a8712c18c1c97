// Model rollouts: canary -> batch -> full, with pause and rollback. The control plane keeps each
// rollout's policy and the agents it enrolled (with the model each ran before) in its store;
// every enrolled agent gets its switch through the coordinator's orchestration (delivered in the
// agent's heartbeat), and the reconciler (every CONTROL_ROLLOUT_POLL_MS) reads the agents'
// reports back from the coordinator, re-sends switches the coordinator has not got, and promotes
// on the batch interval when auto-promote is on. Writes use the rollout's version, so a promote
// and the reconciler (or two control planes) never overwrite each other.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "api/json_reader.h"
#include "control/service.h"
#include "core/crypto.h"
#include "core/log.h"
#include "net/http.h"

namespace edgecoder::control {

namespace detail {

using nlohmann::json;

constexpr const char* kRollbackSuffix = ":rollback";

// What an operation answers: a status and a JSON body (also read by auto-promote).
struct Answer {
  int status = 200;
  json body;
};

Answer fail(int status, std::string_view code, std::string detail, json extra = json::object()) {
  extra["error"] = code;
  extra["detail"] = std::move(detail);
  return {status, std::move(extra)};
}

Answer fail(const core::Error& error) {
  return fail(core::http_status(error.code), error.wire(), error.detail);
}

struct Rollout {
  store::RolloutRecord record;
  json policy;  // the wire object: rolloutId, modelId, targetProvider, stage, ...
  std::vector<store::RolloutAgentState> states;
};

bool is_terminal(const std::string& status) { return status == "healthy" || status == "failed"; }

// The orchestration id of an agent's switch: the rollout's, or its rollback's.
std::string switch_id(const std::string& rollout_id, bool rollback) {
  return rollback ? rollout_id + kRollbackSuffix : rollout_id;
}

json state_json(const store::RolloutAgentState& s) {
  json j = {{"agentId", s.agent_id},
            {"status", s.status},
            {"modelVersion", s.rollback ? s.previous_model : s.target_model},
            {"targetModel", s.target_model},
            {"previousModel", s.previous_model},
            {"rollback", s.rollback},
            {"enrolledAtMs", s.enrolled_at_ms},
            {"updatedAtMs", s.updated_at_ms}};
  if (!s.error.empty()) j["error"] = s.error;
  return j;
}

int failure_percent(const std::vector<store::RolloutAgentState>& states) {
  if (states.empty()) return 0;
  const auto failed = std::count_if(states.begin(), states.end(),
                                    [](const auto& s) { return s.status == "failed"; });
  return static_cast<int>(
      std::lround(100.0 * static_cast<double>(failed) / static_cast<double>(states.size())));
}

json rollout_json(const Rollout& r, bool with_states) {
  json out = r.policy;
  std::map<std::string, int> counts;
  for (const auto& s : r.states) counts[s.status]++;
  const int done = counts["healthy"] + counts["applied"];
  out["agentCount"] = r.states.size();
  out["progressPercent"] =
      r.states.empty()
          ? 0
          : static_cast<int>(std::lround(100.0 * done / static_cast<double>(r.states.size())));
  out["failurePercent"] = failure_percent(r.states);
  out["statusCounts"] = counts;
  out["createdAtMs"] = r.record.created_at_ms;
  out["updatedAtMs"] = r.record.updated_at_ms;
  if (with_states) {
    json states = json::array();
    for (const auto& s : r.states) states.push_back(state_json(s));
    out["agentStates"] = states;
  }
  return out;
}

core::Result<std::optional<Rollout>> load_rollout(store::Store& st, const std::string& id) {
  auto record = st.get_rollout(id);
  if (!record) return record.error();
  if (!*record) return std::optional<Rollout>();
  auto states = st.list_rollout_states(id);
  if (!states) return states.error();
  Rollout r{**record, json::parse((*record)->policy_json, nullptr, false), std::move(*states)};
  if (!r.policy.is_object()) r.policy = json::object();
  return std::optional<Rollout>(std::move(r));
}

asio::awaitable<core::Result<std::optional<Rollout>>> read_rollout(ServicePtr svc, std::string id) {
  store::Store* st = svc->store.get();
  auto call = st->run([st, id] { return load_rollout(*st, id); });
  co_return co_await std::move(call);
}

// Stores the policy and the changed states if the rollout is unchanged since it was read.
asio::awaitable<core::Result<std::int64_t>> write_rollout(
    ServicePtr svc, Rollout r, std::vector<store::RolloutAgentState> changed) {
  r.record.policy_json = r.policy.dump();
  store::Store* st = svc->store.get();
  auto call =
      st->run([st, record = r.record, changed] { return st->put_rollout(record, changed); });
  co_return co_await std::move(call);
}

// The agents a rollout may enrol: approved, served by the network mode and online, by id.
asio::awaitable<core::Result<std::vector<json>>> eligible_agents(ServicePtr svc) {
  auto call = call_coordinator(svc, "GET", "/admin/agents", "");
  auto reply = co_await std::move(call);
  if (!reply) co_return reply.error();
  if (reply->status != 200 || !reply->body.contains("agents")) {
    co_return core::Error(
        core::Errc::unavailable, "coordinator_refused",
        "the coordinator answered " + std::to_string(reply->status) + " to /admin/agents");
  }
  std::vector<json> out;
  for (const auto& a : reply->body["agents"]) {
    if (a.value("served", false) && a.value("online", false)) out.push_back(a);
  }
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return a.value("agentId", "") < b.value("agentId", "");
  });
  co_return out;
}

// Asks the coordinator to switch each given agent; a failure is left to the reconciler.
asio::awaitable<void> send_switches(ServicePtr svc, Rollout r,
                                    std::vector<store::RolloutAgentState> states) {
  for (const auto& s : states) {
    json body = {{"rolloutId", switch_id(r.record.id, s.rollback)},
                 {"provider", r.policy.value("targetProvider", "ollama-local")},
                 {"model", s.rollback ? s.previous_model : s.target_model},
                 {"requestedBy", "control-plane"}};
    auto call = call_coordinator(
        svc, "POST", "/admin/orchestration/agents/" + net::percent_encode(s.agent_id), body.dump());
    auto reply = co_await std::move(call);
    if (!reply || reply->status != 200) {
      core::log::warn("control", "model_switch_not_sent",
                      {{"rollout", r.record.id},
                       {"agent", s.agent_id},
                       {"detail", reply ? std::to_string(reply->status) : reply.error().detail}});
    }
  }
}

// New enrolments for the given agents: pending, switching from the model each runs now.
std::vector<store::RolloutAgentState> enrol(const Rollout& r, const std::vector<json>& agents) {
  std::vector<store::RolloutAgentState> out;
  for (const auto& a : agents) {
    store::RolloutAgentState s;
    s.rollout_id = r.record.id;
    s.agent_id = a.value("agentId", "");
    s.target_model = r.policy.value("modelId", "");
    s.previous_model = a.value("activeModel", "");
    out.push_back(std::move(s));
  }
  return out;
}

json agent_ids(const std::vector<store::RolloutAgentState>& states) {
  json ids = json::array();
  for (const auto& s : states) ids.push_back(s.agent_id);
  return ids;
}

// Reads a rollout an operator is about to change; without it, the answer that says why.
asio::awaitable<std::pair<std::optional<Rollout>, Answer>> read_for_change(ServicePtr svc,
                                                                           std::string id) {
  auto read = read_rollout(svc, id);
  auto loaded = co_await std::move(read);
  if (!loaded) co_return std::make_pair(std::optional<Rollout>(), fail(loaded.error()));
  if (!*loaded) {
    co_return std::make_pair(std::optional<Rollout>(),
                             fail(404, "rollout_not_found", "no rollout " + id));
  }
  co_return std::make_pair(std::move(*loaded), Answer{});
}

// Stores a change (if nobody changed the rollout since it was read), sends the switches, and
// answers the stored rollout with `extra` merged in.
asio::awaitable<Answer> commit(ServicePtr svc, Rollout r,
                               std::vector<store::RolloutAgentState> changed,
                               std::vector<store::RolloutAgentState> to_send, int status,
                               json extra) {
  auto write = write_rollout(svc, r, std::move(changed));
  auto version = co_await std::move(write);
  if (!version) co_return fail(version.error());
  auto send = send_switches(svc, r, std::move(to_send));
  co_await std::move(send);
  auto reread = read_rollout(svc, r.record.id);
  auto stored = co_await std::move(reread);
  if (!stored || !*stored) co_return fail(500, "internal", "the rollout was stored but not read");
  json out = rollout_json(**stored, true);
  out.update(extra);
  co_return Answer{status, out};
}

asio::awaitable<Answer> create_rollout(ServicePtr svc, json body) {
  api::JsonReader r(body);
  std::string model = r.str("modelId", false, 0, 200);
  if (model.empty()) model = r.str("model", true, 1, 200);
  std::string provider = r.one_of("targetProvider", {"ollama-local", "edgecoder-local"}, "");
  if (provider.empty()) {
    provider = r.one_of("provider", {"ollama-local", "edgecoder-local"}, "ollama-local");
  }
  const auto canary = r.integer("canaryPercent", 1, 100, 10);
  const auto batch = r.integer("batchSize", 1, 100000, 5);
  const auto interval = r.integer("batchIntervalMs", 0, 7 * 86'400'000LL, 60'000);
  const bool health = r.boolean("healthCheckRequired", true);
  const bool auto_promote = r.boolean("autoPromote", false);
  const auto threshold = r.integer("rollbackOnFailurePercent", 1, 100, 30);
  if (!r.ok()) co_return fail(*r.error());
  if (!api::is_identifier(model, 200)) {
    co_return fail(400, "invalid_request", "modelId: expected a model name such as qwen2.5:7b");
  }

  auto agents_call = eligible_agents(svc);
  auto agents = co_await std::move(agents_call);
  if (!agents) co_return fail(502, "coordinator_unreachable", agents.error().detail);
  // An agent already switching in an unfinished rollout is left to that one.
  store::Store* st = svc->store.get();
  auto busy_call = st->run([st]() -> core::Result<std::set<std::string>> {
    auto all = st->list_rollouts();
    if (!all) return all.error();
    std::set<std::string> busy;
    for (const auto& rec : *all) {
      auto loaded = load_rollout(*st, rec.id);
      if (!loaded) return loaded.error();
      if (!*loaded) continue;
      const std::string stage = (*loaded)->policy.value("stage", "");
      if (stage == "rolled_back") continue;
      for (const auto& s : (*loaded)->states) {
        if (!is_terminal(s.status)) busy.insert(s.agent_id);
      }
    }
    return busy;
  });
  auto busy = co_await std::move(busy_call);
  if (!busy) co_return fail(busy.error());
  std::vector<json> free;
  for (auto& a : *agents) {
    if (!busy->count(a.value("agentId", ""))) free.push_back(std::move(a));
  }
  if (free.empty()) {
    co_return fail(409, "no_eligible_agents",
                   "no approved, online agent is free to take a rollout (see GET /agents)");
  }
  const auto count = std::max<std::size_t>(
      1, static_cast<std::size_t>(
             std::ceil(static_cast<double>(free.size()) * static_cast<double>(canary) / 100.0)));
  free.resize(std::min(count, free.size()));

  const std::int64_t now = svc->now();
  Rollout rollout;
  rollout.record.id = "rollout-" + std::to_string(now) + "-" + core::crypto::random_hex(3);
  rollout.policy = {{"rolloutId", rollout.record.id}, {"modelId", model},
                    {"targetProvider", provider},     {"stage", "canary"},
                    {"canaryPercent", canary},        {"batchSize", batch},
                    {"batchIntervalMs", interval},    {"healthCheckRequired", health},
                    {"autoPromote", auto_promote},    {"rollbackOnFailurePercent", threshold},
                    {"stageChangedAtMs", now}};
  rollout.states = enrol(rollout, free);
  json extra = {{"canaryAgents", agent_ids(rollout.states)}};
  auto done = commit(svc, rollout, rollout.states, rollout.states, 201, std::move(extra));
  co_return co_await std::move(done);
}

asio::awaitable<Answer> promote(ServicePtr svc, std::string id) {
  auto read = read_for_change(svc, id);
  auto loaded = co_await std::move(read);
  if (!loaded.first) co_return loaded.second;
  Rollout r = std::move(*loaded.first);
  const std::string stage = r.policy.value("stage", "");
  if (stage == "rolled_back") {
    co_return fail(400, "cannot_promote_rolled_back", "rollout " + id + " was rolled back");
  }
  if (stage == "paused") co_return fail(400, "cannot_promote_paused", "resume it first");
  if (stage == "full") {
    co_return fail(400, "already_fully_rolled_out", "every agent is enrolled already");
  }
  const int threshold = r.policy.value("rollbackOnFailurePercent", 30);
  const int failed = failure_percent(r.states);
  if (r.policy.value("healthCheckRequired", true)) {
    if (!r.states.empty() && failed >= threshold) {
      co_return fail(400, "health_check_failed",
                     std::to_string(failed) + "% of the enrolled agents failed (threshold " +
                         std::to_string(threshold) + "%); roll it back",
                     {{"failurePercent", failed}, {"threshold", threshold}});
    }
    const auto unsettled = std::count_if(r.states.begin(), r.states.end(),
                                         [](const auto& s) { return !is_terminal(s.status); });
    if (unsettled > 0) {
      co_return fail(409, "health_check_pending",
                     std::to_string(unsettled) +
                         " enrolled agent(s) have not reported healthy "
                         "or failed yet",
                     {{"pendingAgents", unsettled}});
    }
  }
  auto agents_call = eligible_agents(svc);
  auto agents = co_await std::move(agents_call);
  if (!agents) co_return fail(502, "coordinator_unreachable", agents.error().detail);
  std::set<std::string> enrolled;
  for (const auto& s : r.states) enrolled.insert(s.agent_id);
  std::vector<json> next;
  for (auto& a : *agents) {
    if (!enrolled.count(a.value("agentId", ""))) next.push_back(std::move(a));
  }
  const std::string to = stage == "canary" ? "batch" : "full";
  if (to == "batch") {
    next.resize(std::min<std::size_t>(next.size(), r.policy.value("batchSize", 5)));
  }
  auto added = enrol(r, next);
  r.policy["stage"] = to;
  r.policy["stageChangedAtMs"] = svc->now();
  json extra = {{"previousStage", stage}, {"enrolledAgents", agent_ids(added)}};
  auto done = commit(svc, r, added, added, 200, std::move(extra));
  co_return co_await std::move(done);
}

asio::awaitable<Answer> pause_or_resume(ServicePtr svc, std::string id, bool pause) {
  auto read = read_for_change(svc, id);
  auto loaded = co_await std::move(read);
  if (!loaded.first) co_return loaded.second;
  Rollout r = std::move(*loaded.first);
  const std::string stage = r.policy.value("stage", "");
  if (pause) {
    if (stage == "rolled_back" || stage == "paused") {
      co_return fail(400, "cannot_pause", "rollout " + id + " is " + stage);
    }
    r.policy["stage"] = "paused";
    r.policy["pausedFrom"] = stage;
  } else {
    if (stage != "paused") co_return fail(400, "not_paused", "rollout " + id + " is " + stage);
    r.policy["stage"] = r.policy.value("pausedFrom", "canary");
    r.policy.erase("pausedFrom");
    r.policy["stageChangedAtMs"] = svc->now();
  }
  std::vector<store::RolloutAgentState> none;
  auto done = commit(svc, r, none, none, 200, json::object());
  co_return co_await std::move(done);
}

asio::awaitable<Answer> rollback(ServicePtr svc, std::string id) {
  auto read = read_for_change(svc, id);
  auto loaded = co_await std::move(read);
  if (!loaded.first) co_return loaded.second;
  Rollout r = std::move(*loaded.first);
  const std::string stage = r.policy.value("stage", "");
  std::vector<store::RolloutAgentState> back;
  for (auto s : r.states) {
    if (s.rollback) continue;  // already on its way back
    s.rollback = true;
    if (s.previous_model.empty()) {
      s.status = "failed";
      s.error = "no previous model is known for this agent";
    } else {
      s.status = "pending";
      s.error.clear();
    }
    back.push_back(std::move(s));
  }
  if (stage != "rolled_back") r.policy["rolledBackFrom"] = stage;
  r.policy["stage"] = "rolled_back";
  r.policy["stageChangedAtMs"] = svc->now();
  std::vector<store::RolloutAgentState> to_send;
  for (const auto& s : back) {
    if (s.status == "pending") to_send.push_back(s);
  }
  json extra = {{"rolledBackAgents", agent_ids(back)}};
  auto done = commit(svc, r, back, to_send, 200, std::move(extra));
  co_return co_await std::move(done);
}

// One reconciler pass over one rollout: the agents' reports in, lost switches out, and the
// automatic promotion when its interval has passed with every enrolled agent healthy.
asio::awaitable<void> reconcile_rollout(ServicePtr svc, std::string id) {
  auto read = read_rollout(svc, id);
  auto loaded = co_await std::move(read);
  if (!loaded || !*loaded) co_return;
  Rollout r = std::move(**loaded);
  const bool any_open = std::any_of(r.states.begin(), r.states.end(),
                                    [](const auto& s) { return !is_terminal(s.status); });
  if (any_open) {
    std::map<std::string, json> reports;  // switch id + agent -> orchestration
    const bool kinds[] = {false, true};   // the rollout's switches, then its rollback's
    for (bool rollback : kinds) {
      const std::string sid = switch_id(id, rollback);
      auto call = call_coordinator(
          svc, "GET", "/admin/orchestration?rolloutId=" + net::percent_encode(sid), "");
      auto reply = co_await std::move(call);
      if (!reply || reply->status != 200 || !reply->body.contains("orchestrations")) co_return;
      for (const auto& o : reply->body["orchestrations"]) {
        reports[sid + "\n" + o.value("agentId", "")] = o;
      }
    }
    std::vector<store::RolloutAgentState> changed, to_send;
    for (auto s : r.states) {
      if (is_terminal(s.status)) continue;
      auto it = reports.find(switch_id(id, s.rollback) + "\n" + s.agent_id);
      if (it == reports.end()) {
        if (s.status == "pending") to_send.push_back(s);
        continue;
      }
      const json& status = it->second.contains("status") ? it->second["status"] : json();
      std::string phase = status.value("phase", "requested");
      if (phase == "requested") phase = "pending";
      const std::string error = phase == "failed" ? status.value("message", "") : "";
      if (phase != s.status || error != s.error) {
        s.status = phase;
        s.error = error;
        changed.push_back(std::move(s));
      }
    }
    if (!changed.empty()) {
      auto write = write_rollout(svc, r, changed);
      auto version = co_await std::move(write);
      if (!version) co_return;  // changed meanwhile: the next pass reads it again
      for (const auto& c : changed) {
        core::log::info("control", "rollout_agent_status",
                        {{"rollout", id}, {"agent", c.agent_id}, {"status", c.status}});
      }
    }
    if (!to_send.empty()) {
      auto send = send_switches(svc, r, to_send);
      co_await std::move(send);
    }
    co_return;
  }
  const std::string stage = r.policy.value("stage", "");
  const bool due = svc->now() - r.policy.value("stageChangedAtMs", std::int64_t{0}) >=
                   r.policy.value("batchIntervalMs", std::int64_t{60'000});
  const bool all_healthy = std::all_of(r.states.begin(), r.states.end(),
                                       [](const auto& s) { return s.status == "healthy"; });
  if (r.policy.value("autoPromote", false) && (stage == "canary" || stage == "batch") && due &&
      all_healthy) {
    auto step = promote(svc, id);
    Answer a = co_await std::move(step);
    core::log::info("control", "rollout_auto_promoted",
                    {{"rollout", id}, {"status", a.status}, {"stage", a.body.value("stage", "")}});
  }
}

asio::awaitable<void> reconcile_all(ServicePtr svc) {
  store::Store* st = svc->store.get();
  auto call = st->run([st] { return st->list_rollouts(); });
  auto all = co_await std::move(call);
  if (!all) co_return;
  for (const auto& rec : *all) {
    auto one = reconcile_rollout(svc, rec.id);
    co_await std::move(one);
  }
}

// An operator's change to a rollout, audited when it succeeded.
asio::awaitable<net::Response> audited(ServicePtr svc, net::Request request, Answer a,
                                       std::string action) {
  if (a.status >= 300) co_return net::Response::json(a.status, a.body);
  AuditFacts facts{std::move(action), a.body.value("rolloutId", "")};
  facts.detail = {{"stage", a.body.value("stage", "")}, {"modelId", a.body.value("modelId", "")}};
  auto record = record_change(svc, std::move(request), std::move(facts));
  auto id = co_await std::move(record);
  if (!id) co_return audit_failed(id.error());
  a.body["auditId"] = *id;
  co_return net::Response::json(a.status, a.body);
}

asio::awaitable<net::Response> post_rollout(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  auto create = create_rollout(svc, std::move(*body));
  Answer a = co_await std::move(create);
  auto done = audited(svc, std::move(request), std::move(a), "rollout.create");
  co_return co_await std::move(done);
}

asio::awaitable<net::Response> post_action(ServicePtr svc, net::Request request,
                                           std::string action) {
  const std::string id = request.param("rolloutId");
  Answer a;
  if (action == "promote") {
    auto step = promote(svc, id);
    a = co_await std::move(step);
  } else if (action == "rollback") {
    auto step = rollback(svc, id);
    a = co_await std::move(step);
  } else {
    auto step = pause_or_resume(svc, id, action == "pause");
    a = co_await std::move(step);
  }
  auto done = audited(svc, std::move(request), std::move(a), "rollout." + action);
  co_return co_await std::move(done);
}

asio::awaitable<net::Response> get_rollout(ServicePtr svc, net::Request request) {
  auto read = read_rollout(svc, request.param("rolloutId"));
  auto loaded = co_await std::move(read);
  if (!loaded) co_return net::Response::error(loaded.error());
  if (!*loaded) co_return net::Response::error(404, "rollout_not_found", "no such rollout");
  co_return net::Response::json(200, rollout_json(**loaded, true));
}

asio::awaitable<net::Response> list_rollouts(ServicePtr svc, net::Request) {
  store::Store* st = svc->store.get();
  auto call = st->run([st] { return list_rollouts_json(*st); });
  auto list = co_await std::move(call);
  if (!list) co_return net::Response::error(list.error());
  co_return net::Response::json(200, {{"rollouts", *list}});
}

}  // namespace detail

core::Result<nlohmann::json> list_rollouts_json(store::Store& st) {
  auto all = st.list_rollouts();
  if (!all) return all.error();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& rec : *all) {
    auto loaded = detail::load_rollout(st, rec.id);
    if (!loaded) return loaded.error();
    if (*loaded) list.push_back(detail::rollout_json(**loaded, false));
  }
  return list;
}

void add_rollout_routes(net::Router& router, ServicePtr svc) {
  router.add("POST", "/rollouts",
             [svc](net::Request r) { return detail::post_rollout(svc, std::move(r)); });
  router.add("GET", "/rollouts",
             [svc](net::Request r) { return detail::list_rollouts(svc, std::move(r)); });
  router.add("GET", "/rollouts/:rolloutId",
             [svc](net::Request r) { return detail::get_rollout(svc, std::move(r)); });
  for (const char* action : {"promote", "pause", "resume", "rollback"}) {
    router.add(
        "POST", std::string("/rollouts/:rolloutId/") + action,
        [svc, action](net::Request r) { return detail::post_action(svc, std::move(r), action); });
  }
}

asio::awaitable<void> reconcile_rollouts(ServicePtr svc) {
  auto pass = detail::reconcile_all(std::move(svc));
  co_await std::move(pass);
}

}  // namespace edgecoder::control
