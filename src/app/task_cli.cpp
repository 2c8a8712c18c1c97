// Client verbs: see task_cli.h.
#include "app/task_cli.h"

#include <csignal>
#include <cstdio>
#include <map>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "app/secrets.h"
#include "net/client.h"
#include "net/http.h"
#include "net/stream_parsers.h"

namespace edgecoder::app {
namespace {

namespace asio = boost::asio;
using nlohmann::json;

struct Target {
  std::string base;  // http://host:port, no trailing slash
  std::string token;
};

Target target(const core::Config& config) {
  Target t;
  std::string url = config.settings.get_or("COORDINATOR_URL", "");
  if (auto comma = url.find(','); comma != std::string::npos) url.resize(comma);
  while (!url.empty() && (url.back() == '/' || url.back() == ' ')) url.pop_back();
  if (url.empty()) {
    auto port = config.ports.find(core::Service::coordinator);
    url = "http://127.0.0.1:" + std::to_string(port != config.ports.end() ? port->second : 4301);
  }
  t.base = url;
  t.token = effective_secret(config, "MESH_AUTH_TOKEN");
  return t;
}

net::ClientRequest request(const Target& t, const std::string& method, const std::string& path,
                           const std::optional<json>& body = std::nullopt) {
  net::ClientRequest req;
  req.method = method;
  req.url = t.base + path;
  if (!t.token.empty()) req.headers.emplace_back("x-mesh-token", t.token);
  if (body) {
    req.headers.emplace_back("content-type", "application/json");
    req.body = body->dump();
  }
  return req;
}

// The coordinator's error as one line: its "error" code and "detail", else the raw body.
std::string describe(const net::ClientResponse& resp) {
  auto j = json::parse(resp.body, nullptr, false);
  std::string out = "HTTP " + std::to_string(resp.status);
  if (j.is_object() && j.contains("error")) {
    out += ": " + j.value("error", std::string());
    if (j.contains("detail") && j["detail"].is_string()) out += " (" + j.value("detail", "") + ")";
  } else if (!resp.body.empty()) {
    out += ": " + resp.body.substr(0, 200);
  }
  return out;
}

// One blocking call; prints why on failure.
std::optional<json> call(const Target& t, const std::string& method, const std::string& path,
                         const std::optional<json>& body = std::nullopt) {
  auto resp = net::fetch(request(t, method, path, body));
  if (!resp) {
    std::fprintf(stderr, "edgecoder: cannot reach the coordinator at %s: %s\n", t.base.c_str(),
                 resp.error().detail.c_str());
    return std::nullopt;
  }
  if (resp->status == 401) {
    std::fprintf(stderr,
                 "edgecoder: the coordinator refused the mesh token (%s); set MESH_AUTH_TOKEN or "
                 "run this as the owner of the node's data directory\n",
                 describe(*resp).c_str());
    return std::nullopt;
  }
  if (resp->status >= 300) {
    std::fprintf(stderr, "edgecoder: %s %s: %s\n", method.c_str(), path.c_str(),
                 describe(*resp).c_str());
    return std::nullopt;
  }
  auto j = json::parse(resp->body, nullptr, false);
  if (j.is_discarded()) {
    std::fprintf(stderr, "edgecoder: %s %s: the answer is not JSON\n", method.c_str(),
                 path.c_str());
    return std::nullopt;
  }
  return j;
}

std::string percent_path(const std::string& id) { return net::percent_encode(id); }

// ---- following a task's events ----

struct Follow {
  Target target;
  std::string task_id;
  std::map<std::string, int> index;  // subtask id -> 1-based position
  int subtasks = 0;
  std::string last_event_id;
  bool finished = false;  // the stream ended with the task terminal
};

void print_event(Follow& f, const net::SseEvent& e) {
  auto data = json::parse(e.data, nullptr, false);
  const std::string sid = data.is_object() ? data.value("subtaskId", "") : "";
  const std::string which = "subtask " + std::to_string(f.index.count(sid) ? f.index[sid] : 0) +
                            "/" + std::to_string(f.subtasks);
  if (e.event == "subtask_leased") {
    std::fprintf(stderr, "  %s: running on %s (attempt %d)\n", which.c_str(),
                 data.value("agentId", "?").c_str(), data.value("attempt", 1));
  } else if (e.event == "subtask_result") {
    std::fprintf(stderr, "  %s: %s\n", which.c_str(), data.value("ok", false) ? "done" : "failed");
  } else if (e.event == "subtask_requeued") {
    std::fprintf(stderr, "  %s: requeued (%s)\n", which.c_str(), data.value("reason", "").c_str());
  } else if (e.event == "subtask_failed") {
    std::fprintf(stderr, "  %s: failed (%s)\n", which.c_str(), data.value("reason", "").c_str());
  } else if (e.event == "task_completed" || e.event == "task_cancelled") {
    f.finished = true;
  }
}

asio::awaitable<void> follow_events(Follow* f, net::HttpClient* client) {
  int failures = 0;
  while (!f->finished && failures < 30) {
    net::ClientRequest req =
        request(f->target, "GET", "/tasks/" + percent_path(f->task_id) + "/events");
    if (!f->last_event_id.empty()) req.headers.emplace_back("last-event-id", f->last_event_id);
    auto open = client->stream(std::move(req));
    auto stream = co_await std::move(open);
    if (stream && (*stream)->status() == 200) {
      net::SseParser parser;
      for (;;) {
        auto next = (*stream)->next();
        auto piece = co_await std::move(next);
        if (!piece || !piece->has_value()) break;
        auto events = parser.feed(**piece);
        if (!events) break;
        for (const auto& e : *events) {
          if (!e.id.empty()) f->last_event_id = e.id;
          print_event(*f, e);
        }
      }
      if (f->finished) co_return;
    } else if (stream && (*stream)->status() < 500) {
      std::fprintf(stderr, "edgecoder: the event stream answered HTTP %d\n", (*stream)->status());
      co_return;
    }
    // The connection dropped (a coordinator restart, a proxy): resume after the last event.
    ++failures;
    asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::seconds(1));
    co_await pause.async_wait(asio::use_awaitable);
  }
}

void print_task(const json& t) {
  std::printf("task %s: %s\n", t.value("taskId", "").c_str(), t.value("status", "").c_str());
  const auto& subs = t.contains("subtasks") ? t["subtasks"] : json::array();
  for (const auto& s : subs) {
    std::printf("  %d. %-9s %-10s attempt %d/%d", s.value("subtaskIndex", 0) + 1,
                s.value("state", "").c_str(), s.value("language", "").c_str(),
                s.value("attempt", 0), s.value("maxAttempts", 0));
    if (s.contains("holder")) std::printf("  on %s", s.value("holder", "").c_str());
    if (s.contains("lastError")) std::printf("  (%s)", s.value("lastError", "").c_str());
    std::printf("\n");
  }
  const std::string output = t.value("output", "");
  if (!output.empty()) {
    std::printf("--- output ---\n%s%s", output.c_str(), output.back() == '\n' ? "" : "\n");
  }
}

}  // namespace

int task_submit(const core::Config& config, const TaskVerb& verb) {
  if (verb.prompt.empty()) {
    std::fprintf(stderr, "edgecoder: task submit needs a prompt\n");
    return 2;
  }
  if (!verb.language.empty() && verb.language != "python" && verb.language != "javascript") {
    std::fprintf(stderr, "edgecoder: --language must be python or javascript, not '%s'\n",
                 verb.language.c_str());
    return 2;
  }
  // Ctrl-C is caught from here on (before the task id is printed), and acted on once the
  // submission is answered: the task then keeps running without us.
  asio::io_context io;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  Follow f;
  f.target = target(config);
  json body = {{"prompt", verb.prompt}};
  if (!verb.language.empty()) body["language"] = verb.language;
  auto created = call(f.target, "POST", "/submit", body);
  if (!created) return 1;
  f.task_id = created->value("taskId", "");
  if (created->contains("subtasks") && (*created)["subtasks"].is_array()) {
    for (const auto& id : (*created)["subtasks"]) {
      if (id.is_string()) f.index[id.get<std::string>()] = ++f.subtasks;
    }
  }
  std::fprintf(stderr, "task %s: %d subtask%s\n", f.task_id.c_str(), f.subtasks,
               f.subtasks == 1 ? "" : "s");

  net::ClientOptions options;
  options.total_timeout = std::chrono::hours(24 * 365);
  net::HttpClient client(io.get_executor(), options);
  bool detached = false;
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    detached = true;
    io.stop();
  });
  asio::co_spawn(io, follow_events(&f, &client), [&](std::exception_ptr) {
    signals.cancel();
    io.stop();
  });
  io.run();
  if (detached) {
    std::fprintf(stderr,
                 "\ndetached; task %s keeps running.\n  follow: edgecoder task show %s\n  "
                 "cancel: edgecoder task cancel %s\n",
                 f.task_id.c_str(), f.task_id.c_str(), f.task_id.c_str());
    return 130;
  }
  auto task = call(f.target, "GET", "/tasks/" + percent_path(f.task_id));
  if (!task) return 1;
  const std::string status = task->value("status", "");
  std::fputs(task->value("output", "").c_str(), stdout);
  if (status != "completed") {
    std::fprintf(stderr, "task %s %s; details: edgecoder task show %s\n", f.task_id.c_str(),
                 status.empty() ? "did not finish" : status.c_str(), f.task_id.c_str());
    return 1;
  }
  return 0;
}

int task_show(const core::Config& config, const TaskVerb& verb) {
  auto task = call(target(config), "GET", "/tasks/" + percent_path(verb.task_id));
  if (!task) return 1;
  if (verb.json) {
    std::printf("%s\n", task->dump(2).c_str());
  } else {
    print_task(*task);
  }
  return 0;
}

int task_cancel(const core::Config& config, const TaskVerb& verb) {
  auto out = call(target(config), "POST", "/tasks/" + percent_path(verb.task_id) + "/cancel",
                  json::object());
  if (!out) return 1;
  std::printf("task %s: cancelled\n", verb.task_id.c_str());
  return 0;
}

int status_show(const core::Config& config, bool as_json) {
  const Target t = target(config);
  auto status = call(t, "GET", "/status");
  if (!status) return 1;
  if (as_json) {
    std::printf("%s\n", status->dump(2).c_str());
    return 0;
  }
  std::printf("coordinator %s\n", t.base.c_str());
  for (const auto& [key, value] : status->items()) {
    std::printf("  %-18s %s\n", key.c_str(),
                value.is_string() ? value.get<std::string>().c_str() : value.dump().c_str());
  }
  return 0;
}

}  // namespace edgecoder::app
