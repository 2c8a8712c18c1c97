// Latency a relay adds over calling the model server directly: the inference service's /chat
// (--relay inference, SSE {"content"}) or the IDE provider's OpenAI /v1/chat/completions
// (--relay ide, SSE chat.completion.chunk).
//
// A fake Ollama server (tests/model/fake_model_server.cpp) streams N tokens per request, one
// every --interval-ms, each token being its own send time (steady_clock ns, same process). The
// client opens S concurrent streams either directly to the fake (POST /api/chat, NDJSON) or
// through the relay (POST /chat on an in-process inference service, SSE), and records:
//   TTFT       request start -> first token received (one sample per stream);
//   per token  token received - token sent by the fake, for every token after the first;
//   total      request start -> end of the stream (one sample per stream);
//   end        last token sent by the fake -> end of the stream seen by the client (one per
//              stream): what a relay adds to the close of the answer;
//   start      request start -> the fake sends the first token (when the request reached it);
//   span       the fake's first token sent -> its last token sent (its schedule, 630 ms at 64
//              tokens every 10 ms, plus any late wake-up of its thread).
// total = start + span + end for each stream, which says where an added millisecond comes from.
// The fake paces its tokens on a fixed schedule from its first token, so a late timer wake-up
// (three busy threads share two cores here) does not push every later token back.
// The added latency is relay minus direct, per percentile. Each run warms both paths up once
// (the relay keeps its model-server connections alive, as in production), then measures; the
// summary is the median over runs of each figure.
//
// Threads: fake server 1, bench client 1, relay (server + its model client) --relay-threads
// event loops (default: what the node runs by default, min(cores, 4); connections are spread
// over them).
//
//   inference_bench [--relay inference|ide] [--runs 3] [--streams 1,50] [--tokens 64]
//                   [--interval-ms 10] [--relay-threads N]
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/metrics.h"
#include "ide/service.h"
#include "inference/service.h"
#include "model/fake_model_server.h"
#include "net/client.h"
#include "net/event_loop.h"
#include "net/server.h"
#include "net/standard_routes.h"
#include "net/stream_parsers.h"

namespace {

namespace asio = boost::asio;
using namespace edgecoder;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr const char* kToken = "bench-token";
constexpr const char* kModel = "qwen2.5-coder:7b";

enum class Relay { inference, ide };

struct BenchArgs {
  Relay relay = Relay::inference;
  int runs = 3;
  std::vector<int> streams = {1, 50};
  int tokens = 64;
  int interval_ms = 10;
  int relay_threads = net::default_loop_count();
};

struct Samples {
  std::vector<double> ttft_us;
  std::vector<double> token_us;
  std::vector<double> total_us;
  std::vector<double> end_us;
  std::vector<double> start_us;  // request start -> the model server sends the first token
  std::vector<double> span_us;   // the model server's first token sent -> its last token sent
  int failed = 0;
};

std::int64_t bench_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(v.size()) + 0.999999);
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

// One stream: records TTFT and per-token latencies into `out` (single client thread).
asio::awaitable<void> bench_stream(net::HttpClient* client, std::string url, bool relay, Relay kind,
                                   Samples* out) {
  net::ClientRequest request;
  request.method = "POST";
  request.url = std::move(url);
  request.headers = {{"Content-Type", "application/json"}};
  if (relay && kind == Relay::inference) request.headers.emplace_back("x-inference-token", kToken);
  if (relay && kind == Relay::ide) {
    request.headers.emplace_back("Authorization", std::string("Bearer ") + kToken);
  }
  const json body = {{"model", kModel},
                     {"messages", {{{"role", "user"}, {"content", "count"}}}},
                     {"stream", true}};
  request.body = body.dump();
  const auto started = Clock::now();
  auto open = client->stream(std::move(request));
  auto stream = co_await std::move(open);
  if (!stream || (*stream)->status() != 200) {
    ++out->failed;
    co_return;
  }
  net::NdjsonParser ndjson;
  net::SseParser sse;
  bool first = true;
  std::int64_t last_sent = 0;
  std::int64_t first_sent = 0;
  for (;;) {
    auto read = (*stream)->next();
    auto piece = co_await std::move(read);
    if (!piece) {
      ++out->failed;
      co_return;
    }
    if (!*piece) break;
    const std::int64_t arrived = bench_now_ns();
    std::vector<std::string> contents;
    if (relay) {
      auto events = sse.feed(**piece);
      if (!events) break;
      for (const auto& e : *events) {
        if (e.data == "[DONE]" || e.event != "message") continue;
        const auto j = json::parse(e.data);
        if (kind == Relay::inference) {
          contents.push_back(j["content"].get<std::string>());
        } else if (!j["choices"].empty()) {
          const std::string c = j["choices"][0]["delta"].value("content", "");
          if (!c.empty()) contents.push_back(c);
        }
      }
    } else {
      auto lines = ndjson.feed(**piece);
      if (!lines) break;
      for (const auto& l : *lines) {
        const auto j = json::parse(l);
        const std::string c = j["message"]["content"].get<std::string>();
        if (!c.empty()) contents.push_back(c);
      }
    }
    for (const auto& c : contents) {
      if (first) {
        out->ttft_us.push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - started).count());
        const auto started_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(started.time_since_epoch())
                .count();
        first_sent = std::stoll(c);
        out->start_us.push_back(static_cast<double>(first_sent - started_ns) / 1000.0);
        first = false;
        continue;
      }
      const std::int64_t sent = std::stoll(c);
      last_sent = sent;
      out->token_us.push_back(static_cast<double>(arrived - sent) / 1000.0);
    }
  }
  out->total_us.push_back(
      std::chrono::duration<double, std::micro>(Clock::now() - started).count());
  if (last_sent > 0) {
    out->end_us.push_back(static_cast<double>(bench_now_ns() - last_sent) / 1000.0);
    out->span_us.push_back(static_cast<double>(last_sent - first_sent) / 1000.0);
  }
}

// Runs `streams` concurrent streams on a fresh client and io_context; returns their samples.
Samples run_round(const std::string& url, bool relay, Relay kind, int streams) {
  asio::io_context io;
  Samples samples;
  {
    net::ClientOptions options;
    options.max_idle_per_host = static_cast<std::size_t>(streams);
    net::HttpClient client(io.get_executor(), options);
    for (int i = 0; i < streams; ++i) {
      asio::co_spawn(io, bench_stream(&client, url, relay, kind, &samples), asio::detached);
    }
    io.run();
  }
  return samples;
}

struct RelayNode {
  // Event loops beyond `io`, one thread each, as the node runs them (EDGECODER_THREADS);
  // declared first so that they outlive `io` (an accept pending there holds one of their sockets).
  std::vector<std::unique_ptr<net::EventLoop>> extra_loops;
  core::metrics::Registry registry;
  net::EventLoop io;
  std::shared_ptr<inference::InferenceService> service;
  std::shared_ptr<ide::IdeService> ide_service;
  std::unique_ptr<net::HttpServer> server;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::uint16_t port = 0;

  RelayNode(const std::string& model_url, Relay kind, int loops) {
    model::ProviderConfig provider;
    provider.kind = model::ProviderKind::ollama;
    provider.base_url = model_url;
    provider.model = kModel;
    provider.coordinator_model = kModel;
    net::Router router;
    if (kind == Relay::inference) {
      inference::ServiceOptions options;
      options.auth_token = kToken;
      options.provider = provider;
      auto created = inference::InferenceService::create(options, io.get_executor(), registry);
      if (!created) {
        std::fprintf(stderr, "relay: %s\n", created.error().detail.c_str());
        std::exit(1);
      }
      service = *created;
      service->add_routes(router);
    } else {
      ide::IdeOptions options;
      options.api_key = kToken;
      options.provider = provider;
      options.route_order = {ide::Route::local};
      options.sandbox.reset();
      auto created = ide::IdeService::create(options, io.get_executor(), registry);
      if (!created) {
        std::fprintf(stderr, "relay: %s\n", created.error().detail.c_str());
        std::exit(1);
      }
      ide_service = *created;
      ide_service->add_routes(router);
    }
    net::StandardRoutes standard;
    standard.service = "inference";
    standard.metrics = &registry;
    net::add_standard_routes(router, std::move(standard));
    net::ServerOptions server_options;
    server_options.name = "inference";
    server = std::make_unique<net::HttpServer>(io, server_options, std::move(router), &registry);
    std::vector<asio::io_context*> connection_loops = {&io};
    for (int i = 1; i < loops; ++i) {
      extra_loops.push_back(std::make_unique<net::EventLoop>(1));
      connection_loops.push_back(extra_loops.back().get());
    }
    server->spread_connections(connection_loops);
    auto bound = server->listen();
    if (!bound) {
      std::fprintf(stderr, "relay: %s\n", bound.error().detail.c_str());
      std::exit(1);
    }
    port = *bound;
    server->start();
    for (auto* loop : connection_loops) {
      work.push_back(asio::make_work_guard(*loop));
      threads.emplace_back([loop] {
        pthread_setname_np(pthread_self(), "relay");  // for profilers
        loop->run();
      });
    }
  }
  ~RelayNode() {
    if (service) service->stop();
    if (ide_service) ide_service->stop();
    server->shutdown();
    work.clear();
    io.stop();
    for (auto& loop : extra_loops) loop->stop();
    for (auto& t : threads) t.join();
    io.shutdown();  // every loop's pending work goes before any loop does (net/event_loop.h)
    for (auto& loop : extra_loops) loop->shutdown();
  }
};

struct Figures {
  double direct_ttft_p50, direct_ttft_p99, relay_ttft_p50, relay_ttft_p99;
  double direct_tok_p50, direct_tok_p99, relay_tok_p50, relay_tok_p99;
  double direct_total_p50, direct_total_p99, relay_total_p50, relay_total_p99;
  double direct_end_p50, direct_end_p99, relay_end_p50, relay_end_p99;
  double direct_start_p50, relay_start_p50, direct_span_p50, relay_span_p50;
  int failed;
};

Figures bench_once(const BenchArgs& args, int streams) {
  testing::FakeBehaviour behaviour;
  behaviour.tokens.assign(static_cast<std::size_t>(args.tokens), "x");
  behaviour.token_interval = std::chrono::milliseconds(args.interval_ms);
  behaviour.embed_send_time = true;
  testing::FakeModelServer fake(testing::FakeModelServer::Flavor::ollama, behaviour);
  RelayNode relay(fake.base_url(), args.relay, args.relay_threads);
  const std::string direct_url = fake.base_url() + "/api/chat";
  const std::string relay_url = "http://127.0.0.1:" + std::to_string(relay.port) +
                                (args.relay == Relay::inference ? "/chat" : "/v1/chat/completions");
  run_round(direct_url, false, args.relay, streams);  // warm-up
  run_round(relay_url, true, args.relay, streams);
  const Samples direct = run_round(direct_url, false, args.relay, streams);
  const Samples relayed = run_round(relay_url, true, args.relay, streams);
  return Figures{percentile(direct.ttft_us, 0.5),   percentile(direct.ttft_us, 0.99),
                 percentile(relayed.ttft_us, 0.5),  percentile(relayed.ttft_us, 0.99),
                 percentile(direct.token_us, 0.5),  percentile(direct.token_us, 0.99),
                 percentile(relayed.token_us, 0.5), percentile(relayed.token_us, 0.99),
                 percentile(direct.total_us, 0.5),  percentile(direct.total_us, 0.99),
                 percentile(relayed.total_us, 0.5), percentile(relayed.total_us, 0.99),
                 percentile(direct.end_us, 0.5),    percentile(direct.end_us, 0.99),
                 percentile(relayed.end_us, 0.5),   percentile(relayed.end_us, 0.99),
                 percentile(direct.start_us, 0.5),  percentile(relayed.start_us, 0.5),
                 percentile(direct.span_us, 0.5),   percentile(relayed.span_us, 0.5),
                 direct.failed + relayed.failed};
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stoi(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  BenchArgs args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--relay") {
      if (value != "inference" && value != "ide") {
        std::fprintf(stderr, "--relay: inference or ide\n");
        return 2;
      }
      args.relay = value == "ide" ? Relay::ide : Relay::inference;
    } else if (flag == "--runs") {
      args.runs = std::stoi(value);
    } else if (flag == "--streams") {
      args.streams = parse_list(value);
    } else if (flag == "--tokens") {
      args.tokens = std::stoi(value);
    } else if (flag == "--interval-ms") {
      args.interval_ms = std::stoi(value);
    } else if (flag == "--relay-threads") {
      args.relay_threads = std::clamp(std::stoi(value), 1, 64);
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  core::log::init(core::log::Level::error);
  std::printf("tokens/stream=%d interval=%d ms runs=%d relay threads=%d (times in ms)\n",
              args.tokens, args.interval_ms, args.runs, args.relay_threads);
  for (int streams : args.streams) {
    std::vector<Figures> runs;
    for (int r = 0; r < args.runs; ++r) {
      const Figures f = bench_once(args, streams);
      runs.push_back(f);
      std::printf(
          "streams=%-3d run %d  ttft direct p50 %.3f p99 %.3f | relay p50 %.3f p99 %.3f   "
          "token direct p50 %.3f p99 %.3f | relay p50 %.3f p99 %.3f  failed=%d\n",
          streams, r + 1, f.direct_ttft_p50 / 1000, f.direct_ttft_p99 / 1000,
          f.relay_ttft_p50 / 1000, f.relay_ttft_p99 / 1000, f.direct_tok_p50 / 1000,
          f.direct_tok_p99 / 1000, f.relay_tok_p50 / 1000, f.relay_tok_p99 / 1000, f.failed);
    }
    auto med = [&](double Figures::*field) {
      std::vector<double> v;
      for (const auto& f : runs) v.push_back(f.*field);
      return median(v) / 1000;
    };
    // One summary line: direct, relay and added, each p50 and (where measured) p99.
    auto line = [&](const char* what, double Figures::*direct50, double Figures::*relay50,
                    double Figures::*direct99 = nullptr, double Figures::*relay99 = nullptr) {
      std::printf("streams=%-3d MEDIAN  %s: direct p50 %.3f", streams, what, med(direct50));
      if (direct99 != nullptr) std::printf(" p99 %.3f", med(direct99));
      std::printf(", relay p50 %.3f", med(relay50));
      if (relay99 != nullptr) std::printf(" p99 %.3f", med(relay99));
      std::printf(", added p50 %.3f", med(relay50) - med(direct50));
      if (direct99 != nullptr) std::printf(" p99 %.3f", med(relay99) - med(direct99));
      std::printf("\n");
    };
    line("TTFT", &Figures::direct_ttft_p50, &Figures::relay_ttft_p50, &Figures::direct_ttft_p99,
         &Figures::relay_ttft_p99);
    line("per token", &Figures::direct_tok_p50, &Figures::relay_tok_p50, &Figures::direct_tok_p99,
         &Figures::relay_tok_p99);
    line("total", &Figures::direct_total_p50, &Figures::relay_total_p50, &Figures::direct_total_p99,
         &Figures::relay_total_p99);
    line("end after last token", &Figures::direct_end_p50, &Figures::relay_end_p50,
         &Figures::direct_end_p99, &Figures::relay_end_p99);
    line("start (request start -> first token sent)", &Figures::direct_start_p50,
         &Figures::relay_start_p50);
    line("span (first token sent -> last token sent)", &Figures::direct_span_p50,
         &Figures::relay_span_p50);
  }
  return 0;
}
