// Status and discovery: GET /status, /health/runtime (public; model probe capped at 1 s),
// /identity (public), /capacity, /models/available, /features. None shows keys or tokens.
#include <map>

#include "coordinator/service.h"

namespace edgecoder::coordinator {

namespace detail {

asio::awaitable<net::Response> status_get(ServicePtr svc, net::Request) {
  store::Store* st = svc->store.get();
  const std::int64_t online_since = svc->now() - svc->options.agent_online_ms;
  auto call = st->run([st, online_since] { return st->queue_counts(online_since); });
  auto c = co_await std::move(call);
  if (!c) co_return net::Response::error(c.error());
  // queued/agents/results keep the upstream meaning (queued = waiting + in flight).
  co_return net::Response::json(200, {{"queued", c->queued + c->leased},
                                      {"agents", c->agents},
                                      {"results", c->results},
                                      {"pending", c->queued},
                                      {"held", c->held},
                                      {"inFlight", c->leased},
                                      {"completed", c->completed},
                                      {"failed", c->failed},
                                      {"cancelled", c->cancelled},
                                      {"tasksOpen", c->tasks_open},
                                      {"tasksFinished", c->tasks_finished},
                                      {"agentsOnline", c->agents_online},
                                      {"agentsApproved", c->agents_approved},
                                      {"agentsPending", c->agents_pending},
                                      {"agentsDenied", c->agents_denied}});
}

asio::awaitable<net::Response> status_health_runtime(ServicePtr svc, net::Request) {
  store::Store* st = svc->store.get();
  const std::int64_t online_since = svc->now() - svc->options.agent_online_ms;
  auto call = st->run([st, online_since] { return st->queue_counts(online_since); });
  auto c = co_await std::move(call);
  nlohmann::json coordinator = {{"provider", svc->options.local_model_provider},
                                {"storeReady", c.has_value()}};
  if (c) {
    coordinator["queued"] = c->queued + c->leased;
    coordinator["agents"] = c->agents;
    coordinator["results"] = c->results;
  }
  // The model probe: at most 1 s in all (the desktop treats > 2 s as "no local agent").
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1'000);
  nlohmann::json ollama = {{"expectedProvider", svc->options.local_model_provider},
                           {"host", svc->options.ollama_host},
                           {"reachable", false},
                           {"version", nullptr},
                           {"modelCount", 0},
                           {"error", nullptr}};
  net::ClientRequest version_req;
  version_req.url = svc->options.ollama_host + "/api/version";
  version_req.total_timeout = std::chrono::milliseconds(1'000);
  version_req.first_byte_timeout = std::chrono::milliseconds(1'000);
  auto vcall = svc->http->request(std::move(version_req));
  auto version = co_await std::move(vcall);
  if (!version) {
    ollama["error"] = version.error().detail;
  } else if (version->status != 200) {
    ollama["error"] = "HTTP " + std::to_string(version->status);
  } else {
    ollama["reachable"] = true;
    auto j = nlohmann::json::parse(version->body, nullptr, false);
    if (j.is_object() && j.contains("version")) ollama["version"] = j["version"];
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() > 10) {
      net::ClientRequest tags_req;
      tags_req.url = svc->options.ollama_host + "/api/tags";
      tags_req.total_timeout = left;
      tags_req.first_byte_timeout = left;
      auto tcall = svc->http->request(std::move(tags_req));
      auto tags = co_await std::move(tcall);
      if (tags && tags->status == 200) {
        auto t = nlohmann::json::parse(tags->body, nullptr, false);
        if (t.is_object() && t.contains("models") && t["models"].is_array()) {
          ollama["modelCount"] = t["models"].size();
        }
      }
    }
  }
  co_return net::Response::json(200,
                                {{"ok", true}, {"coordinator", coordinator}, {"ollama", ollama}});
}

asio::awaitable<net::Response> status_capacity(ServicePtr svc, net::Request) {
  store::Store* st = svc->store.get();
  auto call = st->run([st] { return st->list_agents(std::nullopt, 0); });
  auto agents = co_await std::move(call);
  if (!agents) co_return net::Response::error(agents.error());
  nlohmann::json list = nlohmann::json::array();
  std::int64_t connected = 0, capacity = 0, swarm = 0, ollama = 0, ide = 0;
  for (const auto& a : *agents) {
    nlohmann::json j = agent_json(*svc, a);
    if (j["online"].get<bool>() && a.approval == store::Approval::approved) {
      ++connected;
      capacity += a.info.max_concurrent_tasks;
      if (a.mode() == "swarm-only") ++swarm;
      if (a.mode() == "ide-enabled") ++ide;
      if (j["localModelProvider"] == "ollama-local") ++ollama;
    }
    list.push_back(std::move(j));
  }
  auto counts_call = st->run([st] { return st->agent_mesh().agent_mesh_counts(); });
  auto mesh = co_await std::move(counts_call);
  if (!mesh) co_return net::Response::error(mesh.error());
  nlohmann::json totals = {{"agentsConnected", connected},
                           {"totalCapacity", capacity},
                           {"swarmEnabledCount", swarm},
                           {"localOllamaCount", ollama},
                           {"ideEnabledCount", ide},
                           {"activeTunnels", mesh->tunnels_open},
                           {"peerDirectAccepted", mesh->offers_accepted},
                           {"peerDirectCompleted", mesh->offers_completed},
                           {"blacklistedAgents", 0}};
  co_return net::Response::json(200, {{"totals", totals}, {"agents", list}});
}

// The models online agents run, with how many agents run each (a bare array, as clients read
// it). A plain function: a local type in a coroutine frame trips GCC's -Wsubobject-linkage in
// unity builds.
nlohmann::json models_of(const Service& svc, const std::vector<store::Agent>& agents) {
  struct Model {
    nlohmann::json param_size = 0;
    int agents = 0;
  };
  std::map<std::string, Model> models;
  for (const auto& a : agents) {
    if (a.info.active_model.empty()) continue;
    if (svc.now() - a.last_seen_ms > svc.options.agent_online_ms) continue;
    auto runtime = nlohmann::json::parse(a.info.runtime_json, nullptr, false);
    Model& m = models[a.info.active_model];
    m.agents++;
    if (runtime.is_object() && runtime.contains("activeModelParamSize")) {
      m.param_size = runtime["activeModelParamSize"];
    }
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, m] : models) {
    out.push_back(
        {{"model", name}, {"paramSize", m.param_size}, {"agentCount", m.agents}, {"avgLoad", 0}});
  }
  return out;
}

asio::awaitable<net::Response> status_models(ServicePtr svc, net::Request) {
  store::Store* st = svc->store.get();
  auto call = st->run([st] { return st->list_agents(store::Approval::approved, 0); });
  auto agents = co_await std::move(call);
  if (!agents) co_return net::Response::error(agents.error());
  co_return net::Response::json(200, models_of(*svc, *agents));
}

}  // namespace detail

void add_status_routes(net::Router& router, ServicePtr svc) {
  router.add("GET", "/status",
             [svc](net::Request r) { return detail::status_get(svc, std::move(r)); });
  router.add("GET", "/health/runtime",
             [svc](net::Request r) { return detail::status_health_runtime(svc, std::move(r)); });
  router.add("GET", "/capacity",
             [svc](net::Request r) { return detail::status_capacity(svc, std::move(r)); });
  router.add("GET", "/models/available",
             [svc](net::Request r) { return detail::status_models(svc, std::move(r)); });
  router.add_sync("GET", "/identity", [svc](const net::Request&) {
    return net::Response::json(200, {{"peerId", svc->options.peer_id},
                                     {"publicKeyPem", svc->public_key_pem()},
                                     {"coordinatorUrl", svc->options.public_url},
                                     {"networkMode", svc->network_mode()}});
  });
  router.add_sync("GET", "/features", [svc](const net::Request&) {
    return net::Response::json(200, {{"public_mesh", !svc->enterprise_overlay()},
                                     {"enterprise_overlay", svc->enterprise_overlay()}});
  });
}

}  // namespace edgecoder::coordinator
