#include "net/client_address.h"

#include <optional>

#include <boost/asio/ip/address.hpp>

#include "core/crypto.h"

namespace edgecoder::net {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The address as 16 bytes (IPv4 mapped into IPv6) and whether it was IPv4.
std::optional<std::pair<std::array<std::uint8_t, 16>, bool>> address_bytes(std::string_view text) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  if (address.is_v4()) {
    auto v6 = boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, address.to_v4());
    return std::make_pair(v6.to_bytes(), true);
  }
  return std::make_pair(address.to_v6().to_bytes(), false);
}

}  // namespace

core::Result<IpSet> IpSet::parse(std::string_view list, std::string_view setting) {
  IpSet out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view entry = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (entry.empty()) continue;
    auto bad = [&](std::string_view why) {
      return core::Error(
          core::Errc::invalid_argument, "invalid_setting",
          std::string(setting) + ": '" + std::string(entry) + "' " + std::string(why));
    };
    std::string_view host = entry;
    std::optional<int> prefix;
    if (auto slash = entry.find('/'); slash != std::string_view::npos) {
      host = entry.substr(0, slash);
      const std::string_view bits = entry.substr(slash + 1);
      int value = 0;
      if (bits.empty() || bits.size() > 3) return bad("has a bad prefix length");
      for (char c : bits) {
        if (c < '0' || c > '9') return bad("has a bad prefix length");
        value = value * 10 + (c - '0');
      }
      prefix = value;
    }
    auto bytes = address_bytes(host);
    if (!bytes) return bad("is not an IP address or CIDR range");
    const int max = bytes->second ? 32 : 128;
    if (prefix && *prefix > max) return bad("has a prefix longer than the address");
    Range range;
    range.bytes = bytes->first;
    range.prefix = (prefix ? *prefix : max) + (bytes->second ? 96 : 0);
    out.ranges_.push_back(range);
  }
  return out;
}

bool IpSet::contains(std::string_view address) const {
  auto bytes = address_bytes(trim(address));
  if (!bytes) return false;
  for (const auto& range : ranges_) {
    int bits = range.prefix;
    bool match = true;
    for (std::size_t i = 0; i < 16 && bits > 0 && match; ++i, bits -= 8) {
      const std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
      match = (bytes->first[i] & mask) == (range.bytes[i] & mask);
    }
    if (match) return true;
  }
  return false;
}

std::string client_address(const Request& request, const IpSet& trusted_proxies) {
  std::string address = request.remote_address;
  if (trusted_proxies.empty() || !trusted_proxies.contains(address)) return address;
  // Every x-forwarded-for header, in order, as one list.
  std::vector<std::string_view> hops;
  for (const auto& [name, value] : request.headers) {
    if (!iequals(name, "x-forwarded-for")) continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      hops.push_back(trim(rest.substr(0, comma)));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    if (it->empty()) continue;
    if (!address_bytes(*it)) return std::string(*it);  // garbage matches no allowed address
    address = std::string(*it);
    if (!trusted_proxies.contains(address)) return address;
  }
  return address;
}

core::Result<OperatorGate> operator_gate(const core::Config& config) {
  OperatorGate gate;
  gate.token = config.settings.get_or("ADMIN_API_TOKEN", "");
  gate.insecure_dev = config.insecure_dev;
  auto allowed = IpSet::parse(config.settings.get_or("ALLOWED_ADMIN_IPS", ""), "ALLOWED_ADMIN_IPS");
  if (!allowed) return allowed.error();
  gate.allowed = std::move(*allowed);
  auto proxies = IpSet::parse(config.settings.get_or("TRUSTED_PROXIES", ""), "TRUSTED_PROXIES");
  if (!proxies) return proxies.error();
  gate.trusted_proxies = std::move(*proxies);
  return gate;
}

std::optional<Response> check_operator(const OperatorGate& gate, const Request& request) {
  if (!gate.allowed.empty()) {
    const std::string client = client_address(request, gate.trusted_proxies);
    if (!gate.allowed.contains(client)) {
      return Response::error(
          403, "admin_ip_forbidden",
          "operator routes are not open to " + client.substr(0, 64) + " (ALLOWED_ADMIN_IPS)");
    }
  }
  if (gate.token.empty()) {
    if (gate.insecure_dev) return std::nullopt;
  } else {
    auto header = request.header("x-admin-token");
    if (header && core::crypto::constant_time_equal(*header, gate.token)) return std::nullopt;
    auto bearer = bearer_token(request);
    if (!bearer.empty() && core::crypto::constant_time_equal(bearer, gate.token)) {
      return std::nullopt;
    }
  }
  return Response::error(401, "admin_token_required",
                         "operator routes need x-admin-token (or Authorization: Bearer) with "
                         "ADMIN_API_TOKEN");
}

}  // namespace edgecoder::net
