// Test fixture: the inference service with its standard routes on 127.0.0.1 port 0 (its own
// io_context thread), in front of a fake Ollama or OpenAI server, and small HTTP helpers.
#pragma once

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
#include "inference/service.h"
#include "model/fake_model_server.h"
#include "net/client.h"
#include "net/server.h"
#include "net/standard_routes.h"
#include "net/stream_parsers.h"

namespace edgecoder::inference {

inline constexpr const char* kTestToken = "test-inference-token";
inline constexpr const char* kTestModel = "qwen2.5-coder:7b";

class InferenceFixture : public ::testing::Test {
 protected:
  using Flavor = testing::FakeModelServer::Flavor;

  ~InferenceFixture() override { stop(); }

  // Starts a fake model server of `flavor` (none for edgecoder-local) and the service.
  void start(std::optional<Flavor> flavor, const std::function<void(ServiceOptions&)>& tweak = {}) {
    ServiceOptions options;
    options.auth_token = kTestToken;
    options.health_interval = std::chrono::milliseconds(100);
    options.provider.timeouts.connect = std::chrono::seconds(2);
    options.provider.timeouts.first_token = std::chrono::seconds(5);
    options.provider.timeouts.total = std::chrono::seconds(30);
    if (flavor) {
      fake_ = std::make_unique<testing::FakeModelServer>(*flavor);
      options.provider.kind =
          *flavor == Flavor::ollama ? model::ProviderKind::ollama : model::ProviderKind::openai;
      options.provider.base_url = fake_->base_url();
      options.provider.model = kTestModel;
      options.provider.coordinator_model = kTestModel;
    } else {
      options.provider.kind = model::ProviderKind::edgecoder_local;
      options.provider.model = "edgecoder-local";
      options.provider.coordinator_model = "edgecoder-local";
    }
    if (tweak) tweak(options);
    auto service = InferenceService::create(std::move(options), io_.get_executor(), registry_);
    ASSERT_TRUE(service.has_value()) << service.error().detail;
    service_ = std::move(*service);
    net::Router router;
    service_->add_routes(router);
    net::StandardRoutes standard;
    standard.service = "inference";
    standard.metrics = &registry_;
    auto svc = service_;
    standard.ready_check = [svc] { return svc->ready(); };
    net::add_standard_routes(router, std::move(standard));
    net::ServerOptions server_options;
    server_options.name = "inference";
    server_ = std::make_unique<net::HttpServer>(io_, server_options, std::move(router), &registry_);
    auto port = server_->listen();
    ASSERT_TRUE(port.has_value()) << port.error().detail;
    port_ = *port;
    server_->start();
    service_->start();
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
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
                           const nlohmann::json& body = nullptr, net::Headers headers = {},
                           bool with_token = true) {
    net::ClientRequest request;
    request.method = method;
    request.url = url(path);
    request.headers = std::move(headers);
    if (with_token) request.headers.emplace_back("x-inference-token", kTestToken);
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

  static std::vector<net::SseEvent> events_of(const std::string& body) {
    net::SseParser parser;
    auto events = parser.feed(body);
    EXPECT_TRUE(events.has_value());
    return events ? *events : std::vector<net::SseEvent>{};
  }

  // The concatenated "content" of the data events, and whether the stream ended with [DONE].
  static std::pair<std::string, bool> chat_text(const std::vector<net::SseEvent>& events) {
    std::string text;
    bool done = false;
    for (const auto& e : events) {
      if (e.data == "[DONE]") {
        done = true;
        continue;
      }
      if (e.event != "message") continue;
      const auto j = nlohmann::json::parse(e.data, nullptr, false);
      if (j.is_object() && j.contains("content")) text += j["content"].get<std::string>();
    }
    return {text, done};
  }

  core::metrics::Registry registry_;
  boost::asio::io_context io_;
  std::unique_ptr<testing::FakeModelServer> fake_;
  std::shared_ptr<InferenceService> service_;
  std::unique_ptr<net::HttpServer> server_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

}  // namespace edgecoder::inference
