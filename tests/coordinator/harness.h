// Test harness for the coordinator: the real coordinator routes mounted on an in-process
// HttpServer (127.0.0.1, port 0) over a store on either backend, a settable clock, a fake
// inference service on loopback, and blocking JSON helpers that act as simulated agents.
// Thread-safety: one harness per test; the io_context runs on two background threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "net/client.h"
#include "net/server.h"
#include "store/store.h"
#include "store/store_test_support.h"

namespace edgecoder::coordinator::testing {

inline constexpr const char* kMesh = "mesh-token-for-tests";
inline constexpr const char* kAdmin = "admin-token-for-tests";
inline constexpr const char* kInference = "inference-token-for-tests";
// Lease = timeoutMs + kBudget; the tests move the store clock rather than wait.
inline constexpr std::int64_t kBudget = 1'000;

struct Reply {
  int status = 0;
  nlohmann::json body;
  std::string text;
  net::Headers headers;
};

// One JSON request to 127.0.0.1:`port`; a transport failure is a test failure (status 0).
Reply http_call(std::uint16_t port, const std::string& method, const std::string& path,
                const std::optional<nlohmann::json>& body, net::Headers headers);

// A fake inference service: POST /decompose answers `response` (status `status`) when the
// x-inference-token matches, else 401; records the last request body. POST /escalate likewise
// answers `escalate_response` with `escalate_status`.
struct FakeInference {
  int status = 200;
  nlohmann::json response;
  std::string last_body;
  std::string last_token;
  int calls = 0;
  int escalate_status = 200;
  nlohmann::json escalate_response;
  std::string last_escalate_body;
  std::string last_escalate_token;
  int escalate_calls = 0;
};

// A harness's store, clock and data directory, to start another coordinator on them later (a
// restart: the first harness is gone by then).
struct SharedStore {
  std::shared_ptr<store::testing::TestClock> clock;
  std::shared_ptr<store::testing::StoreHome> home;
};

class Harness;

struct HarnessOptions {
  store::Backend backend = store::Backend::sqlite;
  std::optional<SharedStore> reuse;  // set: backend is ignored
  bool auto_approve = true;
  bool inference_reachable = true;
  std::map<std::string, std::string> extra_settings;
  // A second coordinator on the same store and clock as this harness (PostgreSQL only: a
  // SQLite file belongs to one process); it keeps its own data directory.
  Harness* share_store_with = nullptr;
};

class Harness {
 public:
  explicit Harness(HarnessOptions options = {});
  ~Harness();

  std::uint16_t port() const { return port_; }
  // The coordinator's data directory (its signing key); the SQLite store is data/coordinator.db.
  const std::filesystem::path& data_dir() const { return home_->data_dir(); }
  store::Store& store() { return *store_; }
  // Where the store lives (the PostgreSQL schema, for direct SQL in tests).
  const store::testing::StoreHome& home() const { return *home_; }
  store::testing::TestClock& clock() { return *clock_; }
  std::shared_ptr<FakeInference> inference() { return inference_; }
  // Stops the coordinator's HTTP server as a node's shutdown does (WebSockets are closed).
  void shutdown_server() { server_->shutdown(); }
  SharedStore shared_store() const { return {clock_, home_}; }

  Reply request(const std::string& method, const std::string& path,
                const std::optional<nlohmann::json>& body, net::Headers headers);
  // With the mesh token.
  Reply post(const std::string& path, const nlohmann::json& body);
  Reply get(const std::string& path);
  // With the admin token.
  Reply admin_post(const std::string& path, const nlohmann::json& body = nlohmann::json::object());
  Reply admin_get(const std::string& path);

  // Registers an agent (mesh token) with extra fields; expects 200.
  nlohmann::json register_agent(const std::string& id, nlohmann::json extra = {});
  nlohmann::json pull(const std::string& agent);  // the "subtask" (null when none)
  Reply result(const std::string& agent, const nlohmann::json& subtask, const std::string& output,
               bool ok = true);
  // POST /tasks; returns the subtask ids.
  std::vector<std::string> create_task(const nlohmann::json& body, std::string* task_id = nullptr);
  nlohmann::json task(const std::string& task_id);
  // Polls GET /tasks/:id until pred holds (deadline 10 s). Returns the last task JSON.
  template <typename Pred>
  nlohmann::json wait_task(const std::string& task_id, Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    nlohmann::json t;
    do {
      t = task(task_id);
      if (pred(t)) return t;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < deadline);
    return t;
  }

 private:
  std::shared_ptr<store::testing::TestClock> clock_;
  std::shared_ptr<store::testing::StoreHome> home_;
  store::Store* store_ = nullptr;
  std::shared_ptr<FakeInference> inference_;
  // Outlives io_: connections still queued in io_ at its destruction update server gauges.
  core::metrics::Registry registry_;
  boost::asio::io_context io_;
  std::shared_ptr<void> mounted_;
  std::unique_ptr<net::HttpServer> server_;
  std::unique_ptr<net::HttpServer> fake_;
  std::vector<std::thread> threads_;
  std::uint16_t port_ = 0;
};

// Skips (or, with CI=true, fails) a PostgreSQL case without EDGECODER_TEST_PG_DSN.
bool pg_missing_should_skip(store::Backend backend);

}  // namespace edgecoder::coordinator::testing
