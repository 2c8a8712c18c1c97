// The coordinator list of a COORDINATOR_DISCOVERY_URL answer (the control plane's
// GET /network/coordinators shape).
#include <gtest/gtest.h>

#include "agent/agent.h"

namespace edgecoder::agent {
namespace {

TEST(DiscoveryAnswer, TakesHttpCoordinatorUrlsNormalisedAndDeduplicated) {
  const auto urls = parse_discovered_coordinators(
      R"({"generatedAt":"x","count":5,"coordinators":[
        {"peerId":"bootstrap","coordinatorUrl":"http://127.0.0.1:4301/","source":"bootstrap"},
        {"peerId":"a","coordinatorUrl":" https://coord.example.org:4301 ","source":"mesh"},
        {"peerId":"dup","coordinatorUrl":"http://127.0.0.1:4301","source":"mesh"},
        {"peerId":"ftp","coordinatorUrl":"ftp://evil.example.org","source":"mesh"},
        {"peerId":"bad","coordinatorUrl":42},
        "not an object"]})");
  EXPECT_EQ(urls,
            (std::vector<std::string>{"http://127.0.0.1:4301", "https://coord.example.org:4301"}));
}

TEST(DiscoveryAnswer, AnythingElseGivesNothing) {
  EXPECT_TRUE(parse_discovered_coordinators("").empty());
  EXPECT_TRUE(parse_discovered_coordinators("<html>").empty());
  EXPECT_TRUE(parse_discovered_coordinators("[]").empty());
  EXPECT_TRUE(parse_discovered_coordinators(R"({"coordinators":{}})").empty());
  EXPECT_TRUE(parse_discovered_coordinators(R"({"coordinators":[]})").empty());
}

}  // namespace
}  // namespace edgecoder::agent
