// Protocol-faithful fake model servers for tests and benchmarks: Ollama (/api/generate,
// /api/chat NDJSON, /api/tags, /api/show, /api/version, /api/pull) and an OpenAI-compatible
// server (/v1/chat/completions SSE, /v1/models), in-process on 127.0.0.1 port 0, built on
// net::HttpServer and running on their own thread.
//
// Knobs (FakeBehaviour) reproduce what real servers and networks do: the stream's bytes split
// across TCP writes (every N bytes, or at one offset, with a flush and optional pause between
// pieces), a stall before the response head or before the first token, 404 "model not found" in
// each server's real error shape (also automatically for a model not in `installed`), 500,
// malformed JSON, a stream cut before its end. Chat answers may carry tool calls. The fake records
// every request and notices when the client went away mid-stream (a write failed). Thread-safety:
// all public methods may be called from the test thread while the server runs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace edgecoder::testing {

struct FakeBehaviour {
  // The answer, as the content pieces the model "generates" (one NDJSON line / SSE event each).
  std::vector<std::string> tokens = {"Hello", ", ", "world", "!"};
  std::chrono::milliseconds token_interval{0};  // pause between tokens (unsplit mode)
  // Body splitting: pieces of `split_every` bytes, or two pieces at byte `split_at` (0 = off).
  std::size_t split_every = 0;
  std::size_t split_at = 0;
  std::chrono::milliseconds split_pause{1};  // between pieces, so reads see them apart
  std::chrono::milliseconds stall_before_head{0};
  std::chrono::milliseconds stall_before_first_token{0};  // head sent, then silence
  int fail_status = 0;         // answer generation requests with this status (real error shape)
  bool fail_metadata = false;  // fail_status applies to tags/models/show/version too
  bool malformed = false;      // a broken JSON line/event after the first token; bodies too
  bool truncate = false;       // end the stream after the tokens, without the final line / [DONE]
  // After the final line / [DONE], keep the HTTP body open this long before ending it.
  std::chrono::milliseconds stall_after_final{0};
  bool embed_send_time = false;  // benchmark: each token is its steady_clock send time in ns
  std::vector<std::string> installed = {"qwen2.5-coder:7b", "llama3:latest"};
  std::string api_key;  // openai: require "Authorization: Bearer <api_key>" when set
  int pull_steps = 3;   // progress lines of a pull
  std::chrono::milliseconds pull_interval{10};
  bool pull_fail = false;  // the pull answers an {"error": ...} line
  // Chat only: tool calls the model "makes" after its tokens, each {"name":..,"arguments":{..}}.
  // Ollama sends them whole in one line (arguments as an object, no id; the final line still says
  // "stop"); OpenAI streams each as fragments (id "call_fake<i>", then the arguments text in
  // pieces) and finishes with "tool_calls".
  std::vector<nlohmann::json> tool_calls;
  // As a real model does: make the tool calls only when the request offers `tools` and its last
  // message is not a tool result (then answer with `tokens`).
  bool tool_calls_only_when_offered = false;

  // Sets `tokens` to `text` cut into pieces of `piece` bytes.
  FakeBehaviour& reply(const std::string& text, std::size_t piece = 7);
};

struct FakeRequest {
  std::string method;
  std::string path;
  nlohmann::json body;  // null when the body is not JSON
  std::string authorization;
};

class FakeModelServer {
 public:
  enum class Flavor { ollama, openai };

  // `port` 0 = an ephemeral port. (A fixed port lets a test start a child process first: a child
  // started after the fake would inherit its sockets and keep them open.)
  explicit FakeModelServer(Flavor flavor, FakeBehaviour behaviour = {}, std::uint16_t port = 0);
  ~FakeModelServer();
  FakeModelServer(const FakeModelServer&) = delete;
  FakeModelServer& operator=(const FakeModelServer&) = delete;

  // ollama: http://127.0.0.1:<port>; openai: http://127.0.0.1:<port>/v1.
  std::string base_url() const;
  std::uint16_t port() const { return port_; }

  // The exact bytes of a streamed answer under the current behaviour (ignores the split knobs),
  // so a test can split it at every position.
  std::string stream_body(bool chat, const std::string& model) const;

  void set_behaviour(FakeBehaviour behaviour);
  FakeBehaviour behaviour() const;

  std::vector<FakeRequest> requests() const;
  std::vector<FakeRequest> requests_to(const std::string& path) const;
  void clear_requests();
  // Streams whose client went away before the end (a write failed).
  int disconnects() const;
  bool wait_for_disconnects(int count, std::chrono::milliseconds timeout) const;
  // Streams being written right now.
  int active_streams() const;
  // Client connections open right now (kept-alive ones included).
  std::size_t open_connections() const;

  struct State;

 private:
  struct Runner;
  std::shared_ptr<State> state_;
  std::unique_ptr<Runner> runner_;
  std::uint16_t port_ = 0;
};

}  // namespace edgecoder::testing
