// Test fixture: the IDE provider with its standard routes on 127.0.0.1 port 0 (its own
// io_context thread) in front of a fake model server, plus HTTP helpers and an SSE reader that
// reads events as they arrive (so a test can answer a tool approval mid-stream).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "ide/service.h"
#include "model/fake_model_server.h"
#include "net/client.h"
#include "net/server.h"
#include "net/standard_routes.h"

namespace edgecoder::ide {

inline constexpr const char* kIdeModel = "qwen2.5-coder:7b";

// Reads a streamed HTTP response event by event over a plain socket: `data: ` lines of an SSE
// body (chunk-size lines of the chunked encoding are never `data: ` lines, and the server
// writes whole events per chunk).
class SseReader {
 public:
  SseReader(std::uint16_t port, const std::string& path, const std::string& body,
            const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ADD_FAILURE() << "connect failed";
      return;
    }
    std::string req = "POST " + path +
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      "application/json\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n";
    for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    req += "\r\n" + body;
    (void)!::write(fd_, req.data(), req.size());
  }
  ~SseReader() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // The status code of the response head.
  int status(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    while (buffer_.find("\r\n\r\n") == std::string::npos) {
      if (!fill(timeout)) return 0;
    }
    head_done_ = true;
    return std::stoi(buffer_.substr(9, 3));
  }

  // The next `data:` payload as JSON; nullopt at the end of the stream or on timeout.
  std::optional<nlohmann::json> next(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    if (!head_done_ && status(timeout) == 0) return std::nullopt;
    for (;;) {
      auto pos = buffer_.find("data: ");
      if (pos != std::string::npos) {
        auto end = buffer_.find("\n\n", pos);
        if (end != std::string::npos) {
          std::string data = buffer_.substr(pos + 6, end - pos - 6);
          buffer_.erase(0, end + 2);
          return nlohmann::json::parse(data, nullptr, false);
        }
      }
      // The last chunk of a chunked body: the stream has ended (the connection stays open).
      if (buffer_.find("data: ") == std::string::npos && buffer_.ends_with("0\r\n\r\n")) {
        return std::nullopt;
      }
      if (!fill(timeout)) return std::nullopt;
    }
  }

  // Reads events until one with "type" == `type` (returned) or the end.
  std::optional<nlohmann::json> until(const std::string& type,
                                      std::vector<nlohmann::json>* seen = nullptr) {
    while (auto e = next()) {
      if (seen) seen->push_back(*e);
      if (e->is_object() && e->value("type", "") == type) return e;
    }
    return std::nullopt;
  }

  const std::string& raw() const { return buffer_; }

 private:
  bool fill(std::chrono::seconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count()), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[8192];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buffer_;
  bool head_done_ = false;
};

class IdeFixture : public ::testing::Test {
 protected:
  using Flavor = testing::FakeModelServer::Flavor;

  ~IdeFixture() override { stop(); }

  // Starts the provider in front of `base_url` (an Ollama or OpenAI-compatible server; empty =
  // the edgecoder-local stub), with `sandbox` (may be null).
  void start_with(model::ProviderKind kind, const std::string& base_url,
                  const std::function<void(IdeOptions&)>& tweak = {},
                  std::unique_ptr<sandbox::Sandbox> sandbox = nullptr) {
    IdeOptions options;
    options.provider.kind = kind;
    options.provider.base_url = base_url;
    options.provider.model =
        kind == model::ProviderKind::edgecoder_local ? "edgecoder-local" : kIdeModel;
    options.provider.timeouts.connect = std::chrono::seconds(2);
    options.provider.timeouts.first_token = std::chrono::seconds(20);
    options.provider.timeouts.total = std::chrono::seconds(60);
    options.mesh_poll = std::chrono::milliseconds(50);
    options.sandbox.reset();
    if (tweak) tweak(options);
    auto provider = model::make_provider(options.provider, io_.get_executor(), &registry_);
    ASSERT_TRUE(provider.has_value()) << provider.error().detail;
    service_ = IdeService::create_with(std::move(options), std::move(*provider), std::move(sandbox),
                                       io_.get_executor(), registry_);
    net::Router router;
    service_->add_routes(router);
    net::StandardRoutes standard;
    standard.service = "ide-provider";
    standard.metrics = &registry_;
    net::add_standard_routes(router, std::move(standard));
    net::ServerOptions server_options;
    server_options.name = "ide-provider";
    server_ = std::make_unique<net::HttpServer>(io_, server_options, std::move(router), &registry_);
    auto port = server_->listen();
    ASSERT_TRUE(port.has_value()) << port.error().detail;
    port_ = *port;
    server_->start();
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }

  // Starts a fake model server of `flavor` and the provider in front of it.
  void start(Flavor flavor, const std::function<void(IdeOptions&)>& tweak = {},
             testing::FakeBehaviour behaviour = {}) {
    fake_ = std::make_unique<testing::FakeModelServer>(flavor, std::move(behaviour));
    start_with(flavor == Flavor::ollama ? model::ProviderKind::ollama : model::ProviderKind::openai,
               fake_->base_url(), tweak);
  }

  void stop() {
    if (!thread_.joinable()) return;
    service_->stop();
    server_->shutdown();
    work_.reset();
    io_.stop();
    thread_.join();
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  net::ClientResponse call(const std::string& method, const std::string& path,
                           const nlohmann::json& body = nullptr, net::Headers headers = {}) {
    net::ClientRequest request;
    request.method = method;
    request.url = url(path);
    request.headers = std::move(headers);
    if (!body.is_null()) {
      request.headers.emplace_back("Content-Type", "application/json");
      request.body = body.dump();
    }
    net::ClientOptions options;
    options.total_timeout = std::chrono::seconds(120);
    options.first_byte_timeout = std::chrono::seconds(120);
    auto response = net::fetch(std::move(request), options);
    EXPECT_TRUE(response.has_value()) << (response ? "" : response.error().detail);
    return response ? *response : net::ClientResponse{};
  }

  static nlohmann::json json_of(const net::ClientResponse& r) {
    return nlohmann::json::parse(r.body, nullptr, false);
  }

  core::metrics::Registry registry_;
  boost::asio::io_context io_;
  std::unique_ptr<testing::FakeModelServer> fake_;
  std::shared_ptr<IdeService> service_;
  std::unique_ptr<net::HttpServer> server_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

}  // namespace edgecoder::ide
