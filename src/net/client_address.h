// Who is calling, for operator checks: sets of IP addresses and CIDR ranges (ALLOWED_ADMIN_IPS,
// TRUSTED_PROXIES), the client address of a request that may have come through proxies, and the
// operator gate the control plane and the coordinator's operator routes share. A forwarded-for
// header is believed only from a trusted proxy: anyone else could write it.
// Thread-safety: an IpSet is immutable after parse(); share it freely.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/result.h"
#include "net/http.h"

namespace edgecoder::net {

class IpSet {
 public:
  // Comma-separated IPv4 or IPv6 addresses or CIDR ranges ("10.0.0.0/8, ::1"). `setting` names
  // the source in the error for a bad entry.
  static core::Result<IpSet> parse(std::string_view list, std::string_view setting);
  bool empty() const { return ranges_.empty(); }
  // False for an address that does not parse. IPv4-mapped IPv6 addresses match IPv4 entries.
  bool contains(std::string_view address) const;

 private:
  struct Range {
    std::array<std::uint8_t, 16> bytes{};  // IPv4 as IPv4-mapped IPv6
    int prefix = 128;
  };
  std::vector<Range> ranges_;
};

// The peer's address; when the peer is a trusted proxy, the nearest x-forwarded-for entry (read
// from the right) that is not itself a trusted proxy, so a client cannot choose its address by
// sending the header through a proxy that appends to it.
std::string client_address(const Request& request, const IpSet& trusted_proxies);

// The operator credential (ARCHITECTURE.md §6).
struct OperatorGate {
  std::string token;          // ADMIN_API_TOKEN
  IpSet allowed;              // ALLOWED_ADMIN_IPS; empty = any address
  IpSet trusted_proxies;      // TRUSTED_PROXIES: whose x-forwarded-for is believed
  bool insecure_dev = false;  // EDGECODER_INSECURE_DEV: an empty token lets everyone in
};

// ADMIN_API_TOKEN, ALLOWED_ADMIN_IPS, TRUSTED_PROXIES and EDGECODER_INSECURE_DEV; errors name
// the bad setting.
core::Result<OperatorGate> operator_gate(const core::Config& config);

// nullopt when the request may use operator routes. Else, in this order: 403
// {"error":"admin_ip_forbidden"} when ALLOWED_ADMIN_IPS is set and the client address is not in
// it; 401 {"error":"admin_token_required"} when neither x-admin-token nor Authorization: Bearer
// carries the token (compared in constant time).
std::optional<Response> check_operator(const OperatorGate& gate, const Request& request);

}  // namespace edgecoder::net
