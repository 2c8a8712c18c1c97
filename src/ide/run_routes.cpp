// The VS Code extension's routes: POST /run (auto-route), /run/local and /run/swarm. A task
// becomes a plan and code from the local model, run once in the sandbox; or a mesh task whose
// agent does the same. The reply is the extension's AgentExecution shape plus the route taken.
#include <chrono>

#include "core/log.h"
#include "ide/detail.h"
#include "model/extract.h"
#include "model/prompts.h"

namespace edgecoder::ide::detail {

using core::Errc;

namespace {

enum class RunWhere { automatic, local, swarm };

struct RunAsk {
  std::string task;
  std::string language = "python";
  std::optional<int> max_tokens;
};

core::Result<RunAsk> parse_run(const net::Request& request) {
  auto body = net::parse_json_body(request);
  if (!body) return body.error();
  RunAsk ask;
  auto task = body->find("task");
  if (task == body->end() || !task->is_string() || task->get<std::string>().empty()) {
    return core::make_error(Errc::invalid_argument, "task: a non-empty string is required");
  }
  ask.task = task->get<std::string>();
  if (ask.task.size() > 64 * 1024) {
    return core::make_error(Errc::invalid_argument, "task: at most 64 KiB");
  }
  if (auto lang = body->find("language"); lang != body->end() && !lang->is_null()) {
    auto normal = lang->is_string() ? model::normalise_language(lang->get<std::string>())
                                    : std::optional<std::string>();
    if (!normal) return core::make_error(Errc::invalid_argument, "language: python or javascript");
    ask.language = *normal;
  }
  if (auto n = body->find("maxTokens"); n != body->end() && !n->is_null()) {
    if (!n->is_number_integer() || n->get<std::int64_t>() < 1 || n->get<std::int64_t>() > 100'000) {
      return core::make_error(Errc::invalid_argument, "maxTokens: a positive integer expected");
    }
    ask.max_tokens = static_cast<int>(n->get<std::int64_t>());
  }
  return ask;
}

asio::awaitable<core::Result<std::string>> generate_text(ImplPtr self, std::string prompt,
                                                         std::optional<int> max_tokens) {
  model::GenerateRequest gen;
  gen.prompt = std::move(prompt);
  gen.sampling.max_tokens = max_tokens;
  auto open = self->provider->generate(std::move(gen));
  auto stream = co_await std::move(open);
  if (!stream) co_return stream.error();
  auto all = model::collect(std::move(*stream));
  co_return co_await std::move(all);
}

json run_result(const std::string& out, const std::string& err, int code) {
  return {{"stdout", out}, {"stderr", err}, {"exitCode", code}};
}

asio::awaitable<core::Result<json>> run_local(ImplPtr self, RunAsk ask) {
  auto plan_call = generate_text(self, model::plan_prompt(ask.task), ask.max_tokens);
  auto plan = co_await std::move(plan_call);
  if (!plan) co_return plan.error();
  auto code_call =
      generate_text(self, model::code_prompt(ask.task, *plan, ask.language), ask.max_tokens);
  auto reply = co_await std::move(code_call);
  if (!reply) co_return reply.error();
  const std::string code = model::extract_code(*reply, ask.language);
  json out = {{"plan", *plan},
              {"generatedCode", code},
              {"route", self->provider->is_llm() ? "ollama-local" : "edgecoder-local"},
              {"language", ask.language}};
  if (!self->sandbox) {
    out["runResult"] = run_result("", "not run: no sandbox could be set up on this host", 126);
    out["routeError"] = "sandbox unavailable";
    co_return out;
  }
  sandbox::RunRequest run;
  run.language =
      ask.language == "javascript" ? sandbox::Language::javascript : sandbox::Language::python;
  run.code = code;
  // The developer's own task on their own machine: an operator who chose SANDBOX_MODE=none
  // gets what they chose; every other mode isolates.
  run.require_isolation = false;
  const sandbox::Sandbox* box = self->sandbox.get();
  auto call = run_blocking(self->blocking, [box, run] { return box->run(run); });
  auto result = co_await std::move(call);
  if (!result) {
    out["runResult"] = run_result("", "not run: " + result.error().detail, 126);
    co_return out;
  }
  out["runResult"] = run_result(result->stdout_text, result->stderr_text, result->cli_exit_code());
  if (!result->error.empty()) out["sandboxEvents"] = result->error;
  co_return out;
}

asio::awaitable<core::Result<json>> run_swarm(ImplPtr self, RunAsk ask) {
  auto call = run_on_mesh(self, ask.task, ask.language);
  auto outcome = co_await std::move(call);
  if (!outcome) co_return outcome.error();
  co_return json{{"plan", ""},
                 {"generatedCode", ""},
                 {"route", "swarm"},
                 {"language", ask.language},
                 {"swarmTaskId", outcome->task_id},
                 {"runResult", run_result(outcome->output, outcome->error, outcome->ok ? 0 : 1)}};
}

asio::awaitable<net::Response> handle_run(ImplPtr self, net::Request request, RunWhere where) {
  const auto started = Clock::now();
  auto ask = parse_run(request);
  if (!ask) co_return net::Response::error(ask.error());
  std::vector<Route> routes;
  if (where == RunWhere::local) {
    routes = {Route::local};
  } else if (where == RunWhere::swarm) {
    routes = {Route::mesh};
  } else {
    routes = self->options.route_order;
  }
  std::optional<core::Error> last;
  std::string route_error;
  for (Route route : routes) {
    if (route == Route::mesh && !self->mesh_configured()) {
      if (!last)
        last = model::model_unavailable(
            "the mesh route is off: set COORDINATOR_URL and MESH_AUTH_TOKEN");
      continue;
    }
    core::Result<json> out = core::make_error(Errc::internal, "");
    if (route == Route::local) {
      auto call = run_local(self, *ask);
      out = co_await std::move(call);
    } else {
      auto call = run_swarm(self, *ask);
      out = co_await std::move(call);
    }
    self->count(route, out.has_value(), !out && where == RunWhere::automatic);
    if (out) {
      (*out)["latencyMs"] =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
      if (!route_error.empty()) (*out)["routeError"] = route_error;
      co_return net::Response::json(200, *out);
    }
    last = out.error();
    route_error = std::string(route_name(route)) + ": " + out.error().detail;
  }
  const int status = model_error_status(*last);
  co_return net::Response::json(status, {{"error", last->wire()}, {"detail", last->detail}});
}

}  // namespace

void add_run_routes(ImplPtr self, net::Router& router) {
  router.add("POST", "/run", [self](net::Request r) {
    return handle_run(self, std::move(r), RunWhere::automatic);
  });
  router.add("POST", "/run/local",
             [self](net::Request r) { return handle_run(self, std::move(r), RunWhere::local); });
  router.add("POST", "/run/swarm",
             [self](net::Request r) { return handle_run(self, std::move(r), RunWhere::swarm); });
}

}  // namespace edgecoder::ide::detail
