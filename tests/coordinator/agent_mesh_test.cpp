// Agents as mesh peers and peer-direct work over real HTTP on loopback, on SQLite and PostgreSQL:
// /mesh/register-peer and /mesh/peers (no tokens kept or shown, coordinators refused), the
// /mesh/ws WebSocket with a real Beast client (token required, kept alive by pings, closed on
// shutdown), direct-work offers through the heartbeat to completion, tunnels and their notices,
// the relay size limit, the rate limits and the blacklist.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include "coordinator/harness.h"
#include "core/crypto.h"

namespace edgecoder::coordinator {
namespace {

namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using asio::ip::tcp;
using namespace std::chrono_literals;
using testing::Harness;
using testing::HarnessOptions;
using testing::kMesh;
using testing::Reply;

std::string backend_param_name(const ::testing::TestParamInfo<store::Backend>& info) {
  return std::string(store::backend_name(info.param));
}

class AgentMeshTest : public ::testing::TestWithParam<store::Backend> {
 protected:
  void SetUp() override {
    if (testing::pg_missing_should_skip(GetParam())) GTEST_SKIP() << "EDGECODER_TEST_PG_DSN unset";
  }
  std::unique_ptr<Harness> make(std::map<std::string, std::string> settings = {}) {
    HarnessOptions o;
    o.backend = GetParam();
    o.extra_settings = std::move(settings);
    return std::make_unique<Harness>(std::move(o));
  }
};

nlohmann::json peer_body(const std::string& id, const std::string& role) {
  auto key = core::crypto::ed25519_generate();
  nlohmann::json body = {{"peerId", id},
                         {"publicKeyPem", core::crypto::ed25519_public_key_pem(key.public_key)},
                         {"coordinatorUrl", "http://127.0.0.1:4301"},
                         {"networkMode", "public_mesh"},
                         {"registrationToken", "portal-registration-secret"}};
  if (!role.empty()) body["role"] = role;
  return body;
}

// True when any key of any object in `j` names a token.
bool has_token_key(const nlohmann::json& j) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      std::string lower = k;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower.find("token") != std::string::npos || has_token_key(v)) return true;
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      if (has_token_key(v)) return true;
    }
  }
  return false;
}

nlohmann::json heartbeat(Harness& h, const std::string& agent) {
  auto r = h.post("/heartbeat", {{"agentId", agent}});
  EXPECT_EQ(r.status, 200) << r.text;
  return r.body;
}

TEST_P(AgentMeshTest, RegisterPeerStoresAgentsWithoutTokensAndRefusesCoordinators) {
  auto h = make();
  auto agent = peer_body("agent-1", "agent");
  auto anonymous = h->request("POST", "/mesh/register-peer", agent, {});
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(anonymous.body.value("error", ""), "mesh_unauthorized");
  auto r = h->post("/mesh/register-peer", agent);
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body.value("ok", false), true);
  EXPECT_EQ(r.body.value("peerCount", 0), 1);
  // Re-registration refreshes the record.
  agent["coordinatorUrl"] = "https://coordinator.example.org";
  r = h->post("/mesh/register-peer", agent);
  EXPECT_EQ(r.body.value("peerCount", 0), 1);
  r = h->post("/mesh/register-peer", peer_body("phone-1", "phone"));
  EXPECT_EQ(r.body.value("peerCount", 0), 2);

  // Coordinators (explicitly, or without a role as upstream coordinators register) are refused.
  for (const char* role : {"coordinator", ""}) {
    auto coord = h->post("/mesh/register-peer", peer_body("coord-1", role));
    EXPECT_EQ(coord.status, 403) << role;
    EXPECT_EQ(coord.body.value("error", ""), "federation_not_enabled") << coord.text;
  }
  // Bad bodies.
  auto bad = [&](const char* field, nlohmann::json value) {
    auto body = peer_body("agent-2", "agent");
    if (value.is_null()) {
      body.erase(field);
    } else {
      body[field] = value;
    }
    auto res = h->post("/mesh/register-peer", body);
    EXPECT_EQ(res.status, 400) << field << ": " << res.text;
    EXPECT_EQ(res.body.value("error", ""), "invalid_request") << res.text;
    EXPECT_NE(res.body.value("detail", "").find(field), std::string::npos) << res.text;
  };
  bad("peerId", nullptr);
  bad("peerId", "has spaces");
  bad("publicKeyPem", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n");
  bad("coordinatorUrl", "ftp://example.org");
  bad("coordinatorUrl", nullptr);
  bad("networkMode", "dark_mesh");
  bad("role", "robot");
  EXPECT_EQ(h->request("GET", "/mesh/peers", std::nullopt, {}).status, 401);

  auto peers = h->get("/mesh/peers");
  ASSERT_EQ(peers.status, 200) << peers.text;
  ASSERT_EQ(peers.body["peers"].size(), 2u) << peers.text;
  const auto& first = peers.body["peers"][0];
  EXPECT_EQ(first.value("peerId", ""), "agent-1");
  EXPECT_EQ(first.value("role", ""), "agent");
  EXPECT_EQ(first.value("coordinatorUrl", ""), "https://coordinator.example.org");
  EXPECT_EQ(first.value("networkMode", ""), "public_mesh");
  EXPECT_GT(first.value("lastSeenMs", 0LL), 0);
  EXPECT_EQ(peers.body["peers"][1].value("role", ""), "phone");
  EXPECT_EQ(peers.text.find("portal-registration-secret"), std::string::npos) << peers.text;
  EXPECT_EQ(peers.text.find(kMesh), std::string::npos);
  EXPECT_FALSE(has_token_key(peers.body)) << peers.text;
}

TEST_P(AgentMeshTest, MeshSocketNeedsTheTokenIsKeptAliveByPingsAndClosedOnShutdown) {
  auto h = make({{"MESH_WS_PING_MS", "250"}});
  ASSERT_EQ(h->post("/mesh/register-peer", peer_body("agent-ws", "agent")).status, 200);
  const tcp::endpoint at(asio::ip::make_address("127.0.0.1"), h->port());
  for (std::string target : {std::string("/mesh/ws?peerId=agent-ws"),
                             std::string("/mesh/ws?peerId=agent-ws&token=wrong")}) {
    asio::io_context io;
    websocket::stream<tcp::socket> ws(io);
    ws.next_layer().connect(at);
    websocket::response_type res;
    boost::system::error_code ec;
    ws.handshake(res, "127.0.0.1", target, ec);
    EXPECT_EQ(ec, websocket::error::upgrade_declined) << target << ": " << ec.message();
    EXPECT_EQ(res.result_int(), 401) << target;
  }

  // The token as upstream agents send it: in the query. The client's io_context runs on a
  // thread of its own from here on, so that it answers the server's pings at all times.
  asio::io_context io;
  websocket::stream<tcp::socket> ws(io);
  ws.next_layer().connect(at);
  std::atomic<int> pings{0}, pongs{0};
  ws.control_callback([&](websocket::frame_type kind, boost::beast::string_view) {
    if (kind == websocket::frame_type::ping) ++pings;
    if (kind == websocket::frame_type::pong) ++pongs;
  });
  ws.handshake("127.0.0.1", std::string("/mesh/ws?peerId=agent-ws&token=") + kMesh);
  boost::beast::flat_buffer buffer;
  std::atomic<bool> read_done{false};
  boost::system::error_code read_ec;  // written before read_done is set
  ws.async_read(buffer, [&](boost::system::error_code ec, std::size_t) {
    read_ec = ec;
    read_done = true;
  });
  std::thread client([&io] { io.run(); });
  struct Join {
    std::thread& t;
    asio::io_context& io;
    ~Join() {
      io.stop();
      t.join();
    }
  } join{client, io};
  // Ten ping intervals and more: the server pings, the client's stack answers, the socket stays.
  std::this_thread::sleep_for(3s);
  EXPECT_FALSE(read_done.load()) << read_ec.message();
  EXPECT_GE(pings.load(), 3);
  EXPECT_TRUE(h->get("/mesh/peers").body["peers"][0].value("connected", false));
  // The server answers the client's ping.
  asio::post(io, [&ws] { ws.async_ping({}, [](boost::system::error_code) {}); });
  auto until = std::chrono::steady_clock::now() + 10s;
  while (pongs.load() == 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GE(pongs.load(), 1);
  EXPECT_FALSE(read_done.load()) << read_ec.message();
  // Shutdown closes it with "going away".
  h->shutdown_server();
  until = std::chrono::steady_clock::now() + 10s;
  while (!read_done.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(read_done.load());
  EXPECT_EQ(read_ec, websocket::error::closed) << read_ec.message();
  EXPECT_EQ(ws.reason().code, websocket::close_code::going_away);
}

TEST_P(AgentMeshTest, DirectWorkIsOfferedDeliveredAcceptedCompletedAndAudited) {
  auto h = make();
  for (const char* id : {"alice", "bob", "carol"}) h->register_agent(id);
  auto peers = h->get("/agent-mesh/peers/alice");
  ASSERT_EQ(peers.status, 200) << peers.text;
  EXPECT_EQ(peers.body["peers"], nlohmann::json({"bob", "carol"}));

  auto offered = h->post("/agent-mesh/direct-work/offer", {{"fromAgentId", "alice"},
                                                           {"toAgentId", "bob"},
                                                           {"workType", "code_task"},
                                                           {"language", "python"},
                                                           {"input", "print(6 * 7)"}});
  ASSERT_EQ(offered.status, 200) << offered.text;
  const std::string offer_id = offered.body.value("offerId", "");
  ASSERT_FALSE(offer_id.empty());
  auto unknown = h->post("/agent-mesh/direct-work/offer",
                         {{"fromAgentId", "alice"}, {"toAgentId", "nobody"}, {"input", "x"}});
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body.value("error", ""), "agent_not_found");
  auto self = h->post("/agent-mesh/direct-work/offer",
                      {{"fromAgentId", "alice"}, {"toAgentId", "alice"}, {"input", "x"}});
  EXPECT_EQ(self.status, 400);
  auto no_input =
      h->post("/agent-mesh/direct-work/offer", {{"fromAgentId", "alice"}, {"toAgentId", "bob"}});
  EXPECT_EQ(no_input.status, 400);

  // Delivered in the target's heartbeat only.
  auto bob_beat = heartbeat(*h, "bob");
  ASSERT_EQ(bob_beat["directWorkOffers"].size(), 1u) << bob_beat.dump();
  EXPECT_EQ(bob_beat["directWorkOffers"][0].value("offerId", ""), offer_id);
  EXPECT_EQ(bob_beat["directWorkOffers"][0].value("status", ""), "offered");
  EXPECT_EQ(bob_beat["directWorkOffers"][0].value("input", ""), "print(6 * 7)");
  EXPECT_EQ(bob_beat["directWorkOffers"][0].value("fromAgentId", ""), "alice");
  EXPECT_TRUE(heartbeat(*h, "carol")["directWorkOffers"].empty());

  auto wrong =
      h->post("/agent-mesh/direct-work/accept", {{"offerId", offer_id}, {"byAgentId", "carol"}});
  EXPECT_EQ(wrong.status, 403);
  EXPECT_EQ(wrong.body.value("error", ""), "offer_target_mismatch");
  auto early = h->post("/agent-mesh/direct-work/result", {{"offerId", offer_id},
                                                          {"byAgentId", "bob"},
                                                          {"ok", true},
                                                          {"output", "42\n"},
                                                          {"durationMs", 5}});
  EXPECT_EQ(early.status, 409);
  EXPECT_EQ(early.body.value("error", ""), "offer_not_accepted");
  auto missing =
      h->post("/agent-mesh/direct-work/accept", {{"offerId", "no-such"}, {"byAgentId", "bob"}});
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body.value("error", ""), "offer_not_found");

  auto accepted =
      h->post("/agent-mesh/direct-work/accept", {{"offerId", offer_id}, {"byAgentId", "bob"}});
  ASSERT_EQ(accepted.status, 200) << accepted.text;
  EXPECT_EQ(accepted.body.value("accepted", false), true);
  EXPECT_EQ(accepted.body["offer"].value("status", ""), "accepted");
  auto twice =
      h->post("/agent-mesh/direct-work/accept", {{"offerId", offer_id}, {"byAgentId", "bob"}});
  EXPECT_EQ(twice.status, 409);
  EXPECT_EQ(twice.body.value("error", ""), "offer_not_available");
  EXPECT_TRUE(heartbeat(*h, "bob")["directWorkOffers"].empty());

  auto by_other = h->post("/agent-mesh/direct-work/result",
                          {{"offerId", offer_id}, {"byAgentId", "carol"}, {"ok", true}});
  EXPECT_EQ(by_other.status, 403);
  EXPECT_EQ(by_other.body.value("error", ""), "offer_target_mismatch");
  auto result = h->post("/agent-mesh/direct-work/result", {{"offerId", offer_id},
                                                           {"byAgentId", "bob"},
                                                           {"ok", true},
                                                           {"output", "42\n"},
                                                           {"durationMs", 5}});
  ASSERT_EQ(result.status, 200) << result.text;

  auto audit = h->get("/agent-mesh/direct-work/audit?limit=10");
  ASSERT_EQ(audit.status, 200) << audit.text;
  ASSERT_EQ(audit.body["events"].size(), 1u) << audit.text;
  const auto& event = audit.body["events"][0];
  EXPECT_EQ(event.value("offerId", ""), offer_id);
  EXPECT_EQ(event.value("status", ""), "completed");
  EXPECT_EQ(event["result"].value("output", ""), "42\n");
  EXPECT_EQ(event["result"].value("ok", false), true);
  EXPECT_EQ(h->get("/agent-mesh/direct-work/" + offer_id).body.value("status", ""), "completed");
  EXPECT_EQ(h->get("/agent-mesh/direct-work/audit?limit=501").status, 400);
  EXPECT_EQ(h->get("/agent-mesh/direct-work/audit?limit=0").status, 400);
}

TEST_P(AgentMeshTest, TunnelInvitesAndCloseNoticesTravelInHeartbeats) {
  auto h = make();
  for (const char* id : {"alice", "bob", "carol"}) h->register_agent(id);
  auto connect = h->post("/agent-mesh/connect", {{"fromAgentId", "alice"}, {"toAgentId", "bob"}});
  ASSERT_EQ(connect.status, 200) << connect.text;
  const std::string token = connect.body.value("token", "");
  ASSERT_FALSE(token.empty());
  EXPECT_FALSE(connect.body.contains("reused"));
  auto again = h->post("/agent-mesh/connect", {{"fromAgentId", "bob"}, {"toAgentId", "alice"}});
  EXPECT_EQ(again.body.value("token", ""), token);
  EXPECT_EQ(again.body.value("reused", false), true);
  auto ghost = h->post("/agent-mesh/connect", {{"fromAgentId", "alice"}, {"toAgentId", "ghost"}});
  EXPECT_EQ(ghost.status, 404);
  EXPECT_EQ(ghost.body.value("error", ""), "agent_not_found");

  auto beat = heartbeat(*h, "bob");
  ASSERT_EQ(beat["tunnelInvites"].size(), 1u) << beat.dump();
  EXPECT_EQ(beat["tunnelInvites"][0].value("fromAgentId", ""), "alice");
  EXPECT_EQ(beat["tunnelInvites"][0].value("token", ""), token);
  EXPECT_TRUE(heartbeat(*h, "alice")["tunnelInvites"].empty());

  auto mismatch = h->post("/agent-mesh/accept", {{"agentId", "carol"}, {"token", token}});
  EXPECT_EQ(mismatch.status, 403);
  EXPECT_EQ(mismatch.body.value("error", ""), "tunnel_target_mismatch");
  auto unknown = h->post("/agent-mesh/accept", {{"agentId", "bob"}, {"token", "nope"}});
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body.value("error", ""), "tunnel_not_found");
  ASSERT_EQ(h->post("/agent-mesh/accept", {{"agentId", "bob"}, {"token", token}}).status, 200);
  EXPECT_TRUE(heartbeat(*h, "bob")["tunnelInvites"].empty());
  auto models = h->get("/agent-mesh/models/available");
  ASSERT_EQ(models.status, 200) << models.text;
  for (const auto& m : models.body["models"]) {
    const std::string id = m.value("agentId", "");
    EXPECT_EQ(m.value("connectedPeers", -1), id == "carol" ? 0 : 1) << id;
  }

  auto outsider = h->post("/agent-mesh/close", {{"fromAgentId", "carol"}, {"token", token}});
  EXPECT_EQ(outsider.status, 403);
  EXPECT_EQ(outsider.body.value("error", ""), "tunnel_peer_mismatch");
  ASSERT_EQ(
      h->post("/agent-mesh/close", {{"fromAgentId", "alice"}, {"token", token}, {"reason", "done"}})
          .status,
      200);
  // The notice is delivered until it is acknowledged.
  for (int i = 0; i < 2; ++i) {
    beat = heartbeat(*h, "bob");
    ASSERT_EQ(beat["tunnelCloseNotices"].size(), 1u) << beat.dump();
    EXPECT_EQ(beat["tunnelCloseNotices"][0].value("peerAgentId", ""), "alice");
    EXPECT_EQ(beat["tunnelCloseNotices"][0].value("token", ""), token);
    EXPECT_EQ(beat["tunnelCloseNotices"][0].value("reason", ""), "done");
  }
  EXPECT_TRUE(heartbeat(*h, "alice")["tunnelCloseNotices"].empty());
  ASSERT_EQ(h->post("/agent-mesh/close-ack", {{"agentId", "bob"}, {"token", token}}).status, 200);
  EXPECT_TRUE(heartbeat(*h, "bob")["tunnelCloseNotices"].empty());
  auto closed =
      h->post("/agent-mesh/relay", {{"token", token}, {"fromAgentId", "alice"}, {"payload", "x"}});
  EXPECT_EQ(closed.status, 404);

  // An idle tunnel is closed by the sweeper (TUNNEL_IDLE_TTL_MS, default 90 s), both ends told.
  auto idle = h->post("/agent-mesh/connect", {{"fromAgentId", "alice"}, {"toAgentId", "carol"}});
  ASSERT_EQ(idle.status, 200);
  h->clock().advance(91'000);
  nlohmann::json notices;
  auto until = std::chrono::steady_clock::now() + 10s;
  do {
    notices = heartbeat(*h, "carol")["tunnelCloseNotices"];
    if (!notices.empty()) break;
    std::this_thread::sleep_for(20ms);
  } while (std::chrono::steady_clock::now() < until);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].value("reason", ""), "idle_timeout");
  EXPECT_EQ(heartbeat(*h, "alice")["tunnelCloseNotices"].size(), 1u);
}

TEST_P(AgentMeshTest, RelaySizeLimitAndRateLimits) {
  auto h = make({{"RELAY_RATE_LIMIT_PER_10S", "3"},
                 {"TUNNEL_MAX_RELAYS_PER_MIN", "4"},
                 {"DIRECT_WORK_OFFERS_PER_10S", "2"}});
  for (const char* id : {"alice", "bob", "carol"}) h->register_agent(id);
  auto connect = h->post("/agent-mesh/connect", {{"fromAgentId", "alice"}, {"toAgentId", "bob"}});
  const std::string token = connect.body.value("token", "");
  auto relay = [&](const std::string& from, const std::string& payload) {
    return h->post("/agent-mesh/relay",
                   {{"token", token}, {"fromAgentId", from}, {"payload", payload}});
  };
  auto big = relay("alice", std::string(16'385, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(big.body.value("error", ""), "relay_payload_too_large");
  auto at_limit = relay("alice", std::string(16'384, 'x'));
  ASSERT_EQ(at_limit.status, 200) << at_limit.text;
  EXPECT_EQ(at_limit.body.value("relayCount", 0), 1);
  auto stranger = relay("carol", "ping:1");
  EXPECT_EQ(stranger.status, 403);
  EXPECT_EQ(stranger.body.value("error", ""), "tunnel_peer_mismatch");
  EXPECT_EQ(
      h->post("/agent-mesh/relay", {{"token", "nope"}, {"fromAgentId", "alice"}, {"payload", "x"}})
          .status,
      404);
  EXPECT_EQ(relay("alice", "ping:2").body.value("relayCount", 0), 2);
  EXPECT_EQ(relay("alice", "ping:3").body.value("relayCount", 0), 3);
  auto limited = relay("alice", "ping:4");
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.body.value("error", ""), "relay_rate_limited");
  EXPECT_EQ(relay("bob", "ping:5").body.value("relayCount", 0), 4);
  auto capped = relay("bob", "ping:6");
  EXPECT_EQ(capped.status, 429);
  EXPECT_EQ(capped.body.value("error", ""), "tunnel_relay_cap_reached");

  nlohmann::json offer = {{"fromAgentId", "alice"}, {"toAgentId", "bob"}, {"input", "print(1)"}};
  EXPECT_EQ(h->post("/agent-mesh/direct-work/offer", offer).status, 200);
  EXPECT_EQ(h->post("/agent-mesh/direct-work/offer", offer).status, 200);
  auto third = h->post("/agent-mesh/direct-work/offer", offer);
  EXPECT_EQ(third.status, 429);
  EXPECT_EQ(third.body.value("error", ""), "direct_work_offer_rate_limited");
  // Another agent has its own window; the next window lets alice offer again.
  EXPECT_EQ(h->post("/agent-mesh/direct-work/offer",
                    {{"fromAgentId", "bob"}, {"toAgentId", "alice"}, {"input", "print(2)"}})
                .status,
            200);
  h->clock().advance(10'000);
  EXPECT_EQ(h->post("/agent-mesh/direct-work/offer", offer).status, 200);
  EXPECT_EQ(h->get("/agent-mesh/direct-work/audit").body["events"].size(), 4u);
}

TEST_P(AgentMeshTest, BlacklistedAgentsAreRefusedAndExcluded) {
  auto h = make();
  for (const char* id : {"alice", "bob", "carol"}) h->register_agent(id);
  auto offered = h->post("/agent-mesh/direct-work/offer",
                         {{"fromAgentId", "alice"}, {"toAgentId", "bob"}, {"input", "print(1)"}});
  const std::string offer_id = offered.body.value("offerId", "");
  ASSERT_EQ(h->post("/agent-mesh/connect", {{"fromAgentId", "alice"}, {"toAgentId", "bob"}}).status,
            200);
  ASSERT_EQ(h->admin_post("/security/blacklist", {{"agentId", "alice"},
                                                  {"reasonCode", "manual_review"},
                                                  {"reason", "test blacklisting"}})
                .status,
            200);
  auto expect_blacklisted = [](const Reply& r) {
    EXPECT_EQ(r.status, 403) << r.text;
    EXPECT_EQ(r.body.value("error", ""), "agent_blacklisted") << r.text;
  };
  expect_blacklisted(h->post("/agent-mesh/direct-work/offer",
                             {{"fromAgentId", "alice"}, {"toAgentId", "bob"}, {"input", "x"}}));
  expect_blacklisted(h->post("/agent-mesh/direct-work/offer",
                             {{"fromAgentId", "bob"}, {"toAgentId", "alice"}, {"input", "x"}}));
  expect_blacklisted(
      h->post("/agent-mesh/connect", {{"fromAgentId", "carol"}, {"toAgentId", "alice"}}));
  expect_blacklisted(h->get("/agent-mesh/peers/alice"));
  expect_blacklisted(h->post("/mesh/register-peer", peer_body("alice", "agent")));
  expect_blacklisted(
      h->post("/agent-mesh/direct-work/accept", {{"offerId", offer_id}, {"byAgentId", "bob"}}));
  // Excluded from what others see.
  auto peers = h->get("/agent-mesh/peers/bob");
  EXPECT_EQ(peers.body["peers"], nlohmann::json({"carol"}));
  auto beat = heartbeat(*h, "bob");
  EXPECT_TRUE(beat["directWorkOffers"].empty()) << beat.dump();
  EXPECT_TRUE(beat["tunnelInvites"].empty()) << beat.dump();
  auto models = h->get("/agent-mesh/models/available");
  for (const auto& m : models.body["models"]) EXPECT_NE(m.value("agentId", ""), "alice");
  auto with = h->get("/agent-mesh/models/available?includeBlacklisted=true");
  EXPECT_EQ(with.body["models"].size(), 3u) << with.text;
}

INSTANTIATE_TEST_SUITE_P(Backends, AgentMeshTest,
                         ::testing::Values(store::Backend::sqlite, store::Backend::postgres),
                         backend_param_name);

}  // namespace
}  // namespace edgecoder::coordinator
