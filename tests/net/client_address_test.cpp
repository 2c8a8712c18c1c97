// Tests for net/client_address.h: address sets with CIDR ranges in both families, and the client
// address as seen through trusted proxies.
#include "net/client_address.h"

#include <gtest/gtest.h>

namespace edgecoder::net {
namespace {

TEST(IpSet, MatchesAddressesAndRangesInBothFamilies) {
  auto set = IpSet::parse(" 10.0.0.0/8, 192.168.1.7 ,2001:db8::/32,::1,", "ALLOWED_ADMIN_IPS");
  ASSERT_TRUE(set) << set.error().detail;
  EXPECT_FALSE(set->empty());
  EXPECT_TRUE(set->contains("10.200.3.4"));
  EXPECT_TRUE(set->contains("192.168.1.7"));
  EXPECT_FALSE(set->contains("192.168.1.8"));
  EXPECT_FALSE(set->contains("11.0.0.1"));
  EXPECT_TRUE(set->contains("::ffff:10.1.1.1"));  // IPv4-mapped, as a dual-stack socket shows it
  EXPECT_TRUE(set->contains("2001:db8:1::5"));
  EXPECT_FALSE(set->contains("2001:db9::5"));
  EXPECT_TRUE(set->contains("::1"));
  EXPECT_FALSE(set->contains("127.0.0.1"));
  EXPECT_FALSE(set->contains("not an address"));
  EXPECT_FALSE(set->contains(""));

  auto odd = IpSet::parse("10.1.2.3/20", "X");  // host bits set: the range is 10.1.0.0/20
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->contains("10.1.15.255"));
  EXPECT_FALSE(odd->contains("10.1.16.0"));
  auto all = IpSet::parse("0.0.0.0/0", "X");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->contains("203.0.113.9"));
  EXPECT_FALSE(all->contains("2001:db8::1"));  // an IPv4 range holds no IPv6 address
  EXPECT_TRUE(IpSet::parse("", "X")->empty());
}

TEST(IpSet, ABadEntryIsAnErrorNamingTheSettingAndTheEntry) {
  for (const char* bad : {"10.0.0.1/33", "::1/129", "10.0.0.0/", "10.0.0.0/x", "example.com",
                          "10.0.0.0/8/8", "1.2.3.4.5"}) {
    auto set = IpSet::parse(std::string("127.0.0.1,") + bad, "TRUSTED_PROXIES");
    ASSERT_FALSE(set) << bad;
    EXPECT_NE(set.error().detail.find("TRUSTED_PROXIES"), std::string::npos) << bad;
    EXPECT_NE(set.error().detail.find(bad), std::string::npos) << set.error().detail;
  }
}

Request from(std::string peer, std::vector<std::string> forwarded) {
  Request r;
  r.remote_address = std::move(peer);
  for (auto& f : forwarded) r.headers.emplace_back("X-Forwarded-For", std::move(f));
  return r;
}

TEST(ClientAddress, ForwardedForIsBelievedOnlyFromTrustedProxies) {
  auto proxies = IpSet::parse("10.0.0.1, 10.0.0.2", "TRUSTED_PROXIES");
  ASSERT_TRUE(proxies);
  auto none = IpSet::parse("", "TRUSTED_PROXIES");
  // No trusted proxies: the header is ignored.
  EXPECT_EQ(client_address(from("203.0.113.5", {"198.51.100.1"}), *none), "203.0.113.5");
  // From an untrusted peer: ignored.
  EXPECT_EQ(client_address(from("203.0.113.5", {"198.51.100.1"}), *proxies), "203.0.113.5");
  // Through one proxy.
  EXPECT_EQ(client_address(from("10.0.0.1", {"198.51.100.1"}), *proxies), "198.51.100.1");
  // Through two proxies (the nearest first from the right), over two header lines.
  EXPECT_EQ(client_address(from("10.0.0.1", {"198.51.100.1", "10.0.0.2"}), *proxies),
            "198.51.100.1");
  // A client prepending its own choice does not get it.
  EXPECT_EQ(client_address(from("10.0.0.1", {"10.9.9.9, 198.51.100.1"}), *proxies), "198.51.100.1");
  // Garbage where an address should be matches nothing.
  EXPECT_EQ(client_address(from("10.0.0.1", {"1.2.3.4, bogus"}), *proxies), "bogus");
  // Only proxies in the chain: the farthest one.
  EXPECT_EQ(client_address(from("10.0.0.1", {"10.0.0.2"}), *proxies), "10.0.0.2");
  // A trusted proxy that sent no header.
  EXPECT_EQ(client_address(from("10.0.0.1", {}), *proxies), "10.0.0.1");
}

}  // namespace
}  // namespace edgecoder::net
