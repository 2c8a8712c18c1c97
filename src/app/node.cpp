#include "app/node.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/agent.h"
#include "app/secrets.h"
#include "app/services.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/sd_notify.h"
#include "net/event_loop.h"
#include "net/server.h"
#include "net/standard_routes.h"

namespace edgecoder::app {

namespace asio = boost::asio;

namespace {

struct Listener {
  core::Service service;
  MountedService mounted;
  std::unique_ptr<net::HttpServer> server;
};

// Owns the shutdown sequence: drain the listeners and stop the agent (which hands back its
// leases), then stop the loop once they are idle or the drain timeout passes. Lives on the
// io_context's first thread.
class Shutdown {
 public:
  Shutdown(asio::io_context& io, std::vector<Listener>& listeners,
           std::shared_ptr<std::atomic<bool>> draining, std::chrono::milliseconds drain_timeout,
           agent::Agent* agent)
      : io_(io),
        listeners_(listeners),
        draining_(std::move(draining)),
        drain_timeout_(drain_timeout),
        agent_(agent),
        timer_(io) {}

  void begin(int signal_number) {
    if (draining_->exchange(true)) {
      core::log::warn("app", "forced_stop", {{"signal", signal_number}});
      io_.stop();
      return;
    }
    core::log::info("app", "stopping", {{"signal", signal_number}});
    core::sd_notify("STOPPING=1");
    deadline_ = std::chrono::steady_clock::now() + drain_timeout_;
    // The agent first: it hands its leases back, possibly to this node's own coordinator, which
    // must still be listening. The listeners drain once it has stopped (or half the drain time
    // has passed).
    if (agent_) {
      agent_->stop();
      agent_deadline_ = std::chrono::steady_clock::now() + drain_timeout_ / 2;
    } else {
      shut_listeners();
    }
    poll();
  }

 private:
  void shut_listeners() {
    listeners_shut_ = true;
    for (auto& l : listeners_) {
      if (l.mounted.on_drain) {
        l.mounted.on_drain();
      }
      l.server->shutdown();
    }
  }

  void poll() {
    if (!listeners_shut_ &&
        (agent_->stopped() || std::chrono::steady_clock::now() >= agent_deadline_)) {
      shut_listeners();
    }
    std::size_t open = 0;
    for (auto& l : listeners_) {
      open += l.server->active_connections();
    }
    const bool agent_busy = agent_ && !agent_->stopped();
    if ((open == 0 && !agent_busy) || std::chrono::steady_clock::now() >= deadline_) {
      if (open > 0 || agent_busy) {
        core::log::warn("app", "drain_timeout",
                        {{"open_connections", open}, {"agent_busy", agent_busy}});
      }
      io_.stop();
      return;
    }
    timer_.expires_after(std::chrono::milliseconds(20));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) {
        poll();
      }
    });
  }

  asio::io_context& io_;
  std::vector<Listener>& listeners_;
  std::shared_ptr<std::atomic<bool>> draining_;
  const std::chrono::milliseconds drain_timeout_;
  agent::Agent* const agent_;  // null unless this node runs an agent
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::time_point agent_deadline_;
  bool listeners_shut_ = false;
};

class Watchdog {
 public:
  Watchdog(asio::io_context& io, std::chrono::microseconds interval)
      : timer_(io), interval_(interval) {}
  void start() {
    core::sd_notify("WATCHDOG=1");
    timer_.expires_after(interval_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) {
        start();
      }
    });
  }
  void stop() { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
  const std::chrono::microseconds interval_;
};

net::ServerOptions server_options(const core::Config& config, core::Service service) {
  net::ServerOptions options;
  options.name = std::string(core::service_name(service));
  options.bind_address = config.bind_address;
  options.port = config.ports.at(service);
  options.limits = config.limits;
  if (config.tls_cert_file && config.tls_key_file) {
    options.tls = net::TlsFiles{*config.tls_cert_file, *config.tls_key_file};
  }
  return options;
}

}  // namespace

int run_node(core::Config config) {
  if (auto dir = core::fs::ensure_private_dir(config.data_dir); !dir) {
    std::fprintf(stderr, "edgecoder: data directory: %s\n", dir.error().detail.c_str());
    return 1;
  }
  auto missing = prepare_secrets(config);
  if (!missing) {
    std::fprintf(stderr, "edgecoder: %s\n", missing.error().detail.c_str());
    return 2;
  }
  if (config.insecure_dev) {
    for (const auto& name : *missing) {
      core::log::warn("app", "INSECURE_DEV_MODE",
                      {{"missing", name},
                       {"detail",
                        "EDGECODER_INSECURE_DEV=1: running without this token; every "
                        "caller is trusted. Never expose this node."}});
    }
  }

  core::metrics::Registry registry;
  core::metrics::add_process_metrics(registry);
  auto draining = std::make_shared<std::atomic<bool>>(false);
  const int threads = config.threads > 0 ? config.threads : net::default_loop_count();
  // One io_context per thread: `io` (this thread) runs signals, timers, accept loops and the
  // services' own work; connections are spread over all of them so a request never hops threads.
  // The extra loops are declared first so that they outlive `io`: an accept still pending on
  // `io` at exit holds a socket that belongs to one of them. `shutdown_loops`, declared after
  // them and before everything that runs on them, destroys all their pending work before any
  // of them goes (net/event_loop.h).
  std::vector<std::unique_ptr<net::EventLoop>> extra_loops;
  net::EventLoop io(1);
  std::vector<asio::io_context*> connection_loops = {&io};
  std::vector<net::EventLoop*> all_loops = {&io};
  for (int i = 1; i < threads; ++i) {
    extra_loops.push_back(std::make_unique<net::EventLoop>(1));
    connection_loops.push_back(extra_loops.back().get());
    all_loops.push_back(extra_loops.back().get());
  }
  const net::LoopsShutdown shutdown_loops(std::move(all_loops));

  // Catch stop signals before any port is open: one that arrives during start-up is handled
  // (a clean stop) once the loop runs.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  // Bind every port first: a busy port stops the process before any service opens its store.
  std::vector<Listener> listeners;
  for (core::Service service : core::services_for(config.mode)) {
    auto server = std::make_unique<net::HttpServer>(io, server_options(config, service),
                                                    net::Router{}, &registry);
    server->spread_connections(connection_loops);
    auto bound = server->listen();
    if (!bound) {
      const auto port = config.ports.at(service);
      std::fprintf(stderr, "edgecoder: cannot listen on %s:%u for %.*s (mode %.*s): %s\n",
                   config.bind_address.c_str(), static_cast<unsigned>(port),
                   static_cast<int>(core::service_name(service).size()),
                   core::service_name(service).data(),
                   static_cast<int>(core::mode_name(config.mode).size()),
                   core::mode_name(config.mode).data(), bound.error().detail.c_str());
      return 1;
    }
    core::log::info("app", "listening",
                    {{"service", core::service_name(service)},
                     {"address", config.bind_address},
                     {"port", static_cast<unsigned>(*bound)},
                     {"tls", config.tls_cert_file.has_value()}});
    listeners.push_back({service, {}, std::move(server)});
  }
  for (auto& l : listeners) {
    auto mounted = mount_service(l.service, config, io, l.server->router(), registry);
    if (!mounted) {
      std::fprintf(stderr, "edgecoder: cannot start %.*s: %s\n",
                   static_cast<int>(core::service_name(l.service).size()),
                   core::service_name(l.service).data(), mounted.error().detail.c_str());
      return 1;
    }
    l.mounted = std::move(*mounted);
    net::StandardRoutes standard;
    standard.service = std::string(core::service_name(l.service));
    standard.metrics = &registry;
    standard.metrics_token = config.settings.get_or("METRICS_TOKEN", "");
    standard.insecure_dev = config.insecure_dev;
    standard.draining = draining;
    standard.ready_check = l.mounted.ready_check;
    net::add_standard_routes(l.server->router(), std::move(standard));
  }
  for (auto& l : listeners) {
    l.server->start();
  }
  // Destroyed before `io` (declared after it): by then io.run() has returned and the agent's
  // coroutines have ended or will never run again.
  std::unique_ptr<agent::Agent> worker;
  const bool embedded = core::runs_embedded_agent(config);
  if (config.mode == core::Mode::agent || embedded) {
    auto options = agent::agent_options_from(config);
    if (!options) {
      std::fprintf(stderr, "edgecoder: agent: %s\n", options.error().detail.c_str());
      return 2;
    }
    if (embedded) {
      // The node's own agent: approved by the token this node generated for it.
      options->registration_token = config.settings.get_or(core::kSelfAgentTokenSetting, "");
      core::log::info("app", "embedded_agent",
                      {{"coordinator", options->coordinator_urls.front()},
                       {"detail", "DISABLE_SELF_AGENT=1 runs this node without it"}});
    }
    auto created = agent::Agent::create(config, std::move(*options), io.get_executor());
    if (!created) {
      std::fprintf(stderr, "edgecoder: agent: %s\n", created.error().detail.c_str());
      return 1;
    }
    worker = std::move(*created);
    worker->start();
  }

  Shutdown shutdown(io, listeners, draining, config.drain_timeout, worker.get());
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal_number) {
        if (ec) {
          return;
        }
        shutdown.begin(signal_number);
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  std::unique_ptr<Watchdog> watchdog;
  if (auto interval = core::sd_watchdog_interval()) {
    watchdog = std::make_unique<Watchdog>(io, *interval);
    watchdog->start();
  }
  core::log::info("app", "ready",
                  {{"mode", core::mode_name(config.mode)},
                   {"threads", threads},
                   {"data_dir", config.data_dir.string()}});
  core::sd_notify("READY=1\nSTATUS=serving");

  std::vector<std::thread> pool;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  for (auto& loop : extra_loops) {
    keep_running.push_back(asio::make_work_guard(*loop));
    pool.emplace_back([l = loop.get()] { l->run(); });
  }
  io.run();
  for (auto& loop : extra_loops) {
    loop->stop();
  }
  for (auto& t : pool) {
    t.join();
  }
  for (auto& l : listeners) {
    if (l.mounted.on_stopped) {
      l.mounted.on_stopped();
    }
  }
  core::log::info("app", "stopped");
  return 0;
}

}  // namespace edgecoder::app
