// The blacklist (upstream-coordinator.md §1.7 of the control-plane reference): additions and
// removals are events of one hash chain, each naming the hash of the one before, signed with this
// coordinator's Ed25519 key and stored with the active entries they produce in one transaction.
// Operators change it (POST /security/blacklist, DELETE /security/blacklist/:agentId); agents and
// operators read it and its audit (GET /security/blacklist, /security/blacklist/audit, which
// re-verifies every hash and signature). A blacklisted agent is refused on every agent route.
#include <filesystem>

#include "api/json_reader.h"
#include "coordinator/service.h"
#include "core/crypto.h"
#include "core/fs.h"
#include "core/log.h"

namespace edgecoder::coordinator {

namespace {

constexpr const char* kKeyFile = "coordinator-signing-key";

}  // namespace

core::Result<core::crypto::Ed25519KeyPair> load_or_create_signing_key(
    const std::filesystem::path& data_dir) {
  const auto path = data_dir / kKeyFile;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    auto text = core::fs::read_file(path);
    if (!text) return text.error();
    std::string b64 = *text;
    while (!b64.empty() && (b64.back() == '\n' || b64.back() == '\r')) b64.pop_back();
    auto seed = core::crypto::base64_decode(b64);
    if (!seed || seed->size() != 32) {
      return core::make_error(core::Errc::internal,
                              path.string() +
                                  " is not a base64 Ed25519 seed; move it away to "
                                  "make a new key");
    }
    return core::crypto::ed25519_from_seed(*seed);
  }
  if (auto dir = core::fs::ensure_private_dir(data_dir); !dir) return dir.error();
  auto pair = core::crypto::ed25519_generate();
  auto saved = core::fs::write_private_file(
      path, core::crypto::base64_encode(pair.secret_key.substr(0, 32)) + "\n");
  if (!saved) return saved.error();
  core::log::info("coordinator", "signing_key_created", {{"path", path.string()}});
  return pair;
}

namespace detail {

using nlohmann::json;

const std::vector<std::string_view>& reason_codes() {
  static const std::vector<std::string_view> codes = {
      "abuse_spam",   "abuse_malware",  "policy_violation", "credential_abuse",
      "dos_behavior", "forged_results", "manual_review"};
  return codes;
}

json entry_json(const store::BlacklistEntry& e) {
  json record = json::parse(e.record_json, nullptr, false);
  json j = {{"agentId", e.agent_id},
            {"reasonCode", e.reason_code},
            {"reason", e.reason},
            {"reporterId", e.reporter_id},
            {"createdAtMs", e.created_at_ms},
            {"expiresAtMs", e.expires_at_ms ? json(e.expires_at_ms) : json()}};
  if (record.is_object()) j["eventHash"] = record.value("eventHash", "");
  return j;
}

// Builds, signs and appends one event on the current head; retried when another coordinator
// appended first.
asio::awaitable<core::Result<store::BlacklistEvent>> append_event(
    ServicePtr svc, json event, std::optional<store::BlacklistEntry> entry) {
  store::Store* st = svc->store.get();
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto head_call = st->run([st] { return st->blacklist_head(); });
    auto head = co_await std::move(head_call);
    if (!head) co_return head.error();
    event["prevEventHash"] = head->first;
    event["timestampMs"] = svc->now();
    const std::string canonical = event.dump();
    store::BlacklistEvent e;
    e.event_hash = core::crypto::sha256_hex(canonical);
    e.prev_event_hash = head->first;
    e.agent_id = event.value("agentId", "");
    e.action = event.value("action", "");
    auto signature = core::crypto::ed25519_sign(e.event_hash, svc->signing_key.secret_key);
    if (!signature) co_return signature.error();
    e.record_json = json{{"event", event},
                         {"eventHash", e.event_hash},
                         {"signature", core::crypto::base64_encode(*signature)},
                         {"publicKeyPem", svc->public_key_pem()}}
                        .dump();
    if (entry) entry->record_json = e.record_json;
    auto call = st->run([st, e, entry] { return st->append_blacklist_event(e, entry); });
    auto stored = co_await std::move(call);
    if (stored || stored.error().code != core::Errc::conflict) co_return stored;
  }
  co_return core::Error(core::Errc::conflict, "blacklist_chain_busy",
                        "the blacklist chain kept moving; try again");
}

asio::awaitable<net::Response> blacklist_add(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  const std::string agent_id = r.str("agentId", true, 1, 128);
  const std::string code = r.one_of("reasonCode", reason_codes(), "", true);
  const std::string reason = r.str("reason", true, 3, 1000);
  std::string reporter = r.str("reporterId", false, 0, 128);
  if (reporter.empty()) reporter = r.str("reportedBy", false, 0, 128, "operator");
  const std::string evidence = r.str("evidenceHashSha256", false, 0, 64);
  const std::string evidence_ref = r.str("evidenceRef", false, 0, 500);
  const auto expires_in = r.integer("expiresInMs", 1, 10LL * 365 * 86'400'000, 0);
  const std::string reporter_key = r.str("reporterPublicKeyPem", false, 0, 4096);
  const std::string reporter_sig = r.str("reporterSignature", false, 0, 512);
  if (!r.ok()) co_return net::Response::error(*r.error());
  if (!evidence.empty() &&
      (evidence.size() != 64 ||
       evidence.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)) {
    co_return net::Response::error(
        api::invalid_request("evidenceHashSha256: expected 64 hexadecimal characters"));
  }
  // A reporter's own signature, when given, must verify: over the canonical JSON of
  // {agentId, reasonCode, reason, evidenceHashSha256, reporterId}.
  bool reporter_verified = false;
  if (!reporter_sig.empty() || !reporter_key.empty()) {
    auto key = core::crypto::ed25519_public_key_parse(reporter_key);
    auto sig = core::crypto::base64_decode(reporter_sig);
    const json signed_part = {{"agentId", agent_id},
                              {"reasonCode", code},
                              {"reason", reason},
                              {"evidenceHashSha256", evidence},
                              {"reporterId", reporter}};
    reporter_verified = key && sig && core::crypto::ed25519_verify(signed_part.dump(), *sig, *key);
    if (!reporter_verified) {
      co_return error_response(400, "reporter_signature_invalid",
                               "reporterSignature does not verify with reporterPublicKeyPem over "
                               "{agentId, reasonCode, reason, evidenceHashSha256, reporterId}");
    }
  }
  const std::int64_t now = svc->now();
  json event = {{"eventId", new_uuid()},
                {"action", "add"},
                {"agentId", agent_id},
                {"reasonCode", code},
                {"reason", reason},
                {"evidenceHashSha256", evidence},
                {"evidenceRef", evidence_ref},
                {"reporterId", reporter},
                {"reporterSignatureVerified", reporter_verified},
                {"sourceCoordinatorId", svc->options.peer_id},
                {"expiresAtMs", expires_in ? json(now + expires_in) : json()}};
  store::BlacklistEntry entry;
  entry.agent_id = agent_id;
  entry.reason_code = code;
  entry.reason = reason;
  entry.reporter_id = reporter;
  entry.created_at_ms = now;
  entry.expires_at_ms = expires_in ? now + expires_in : 0;
  auto append = append_event(svc, std::move(event), entry);
  auto stored = co_await std::move(append);
  if (!stored) co_return net::Response::error(stored.error());
  core::log::warn("coordinator", "agent_blacklisted",
                  {{"agent", agent_id}, {"reason_code", code}, {"version", stored->seq}});
  entry.record_json = stored->record_json;
  co_return net::Response::json(200, {{"ok", true},
                                      {"record", entry_json(entry)},
                                      {"version", stored->seq},
                                      {"chainHead", stored->event_hash}});
}

asio::awaitable<net::Response> blacklist_remove(ServicePtr svc, net::Request request) {
  const std::string agent_id = request.param("agentId");
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  const std::string reason = r.str("reason", true, 3, 1000);
  const std::string reporter = r.str("reporterId", false, 0, 128, "operator");
  if (!r.ok()) co_return net::Response::error(*r.error());
  store::Store* st = svc->store.get();
  auto get = st->run([st, agent_id] { return st->get_blacklist(agent_id); });
  auto current = co_await std::move(get);
  if (!current) co_return net::Response::error(current.error());
  if (!*current) {
    co_return error_response(404, "not_blacklisted", "agent " + agent_id + " is not blacklisted");
  }
  json event = {{"eventId", new_uuid()},
                {"action", "remove"},
                {"agentId", agent_id},
                {"reason", reason},
                {"reporterId", reporter},
                {"removesEventHash",
                 json::parse((*current)->record_json, nullptr, false).value("eventHash", "")},
                {"sourceCoordinatorId", svc->options.peer_id}};
  auto append = append_event(svc, std::move(event), std::nullopt);
  auto stored = co_await std::move(append);
  if (!stored) co_return net::Response::error(stored.error());
  core::log::info("coordinator", "agent_unblacklisted", {{"agent", agent_id}});
  co_return net::Response::json(200, {{"ok", true},
                                      {"removed", agent_id},
                                      {"version", stored->seq},
                                      {"chainHead", stored->event_hash}});
}

asio::awaitable<net::Response> blacklist_list(ServicePtr svc, net::Request) {
  store::Store* st = svc->store.get();
  auto call = st->run([st]() -> core::Result<json> {
    auto head = st->blacklist_head();
    if (!head) return head.error();
    auto entries = st->list_blacklist();
    if (!entries) return entries.error();
    json records = json::array();
    for (const auto& e : *entries) records.push_back(entry_json(e));
    return json{{"version", head->second}, {"records", records}, {"lastEventHash", head->first}};
  });
  auto out = co_await std::move(call);
  if (!out) co_return net::Response::error(out.error());
  co_return net::Response::json(200, *out);
}

// Re-verifies the chain: each event's hash, its link to the one before, and its signature.
asio::awaitable<net::Response> blacklist_audit(ServicePtr svc, net::Request) {
  store::Store* st = svc->store.get();
  auto call = st->run([st] { return st->list_blacklist_events(0, 0); });
  auto events = co_await std::move(call);
  if (!events) co_return net::Response::error(events.error());
  json list = json::array();
  json problems = json::array();
  std::string prev(store::kBlacklistGenesis);
  for (const auto& e : *events) {
    json record = json::parse(e.record_json, nullptr, false);
    if (!record.is_object()) record = json::object();
    const json event = record.value("event", json::object());
    const std::string hash = core::crypto::sha256_hex(event.dump());
    auto key = core::crypto::ed25519_public_key_parse(record.value("publicKeyPem", ""));
    auto sig = core::crypto::base64_decode(record.value("signature", ""));
    const bool hash_ok = hash == e.event_hash && record.value("eventHash", "") == e.event_hash;
    const bool link_ok = event.value("prevEventHash", "") == prev && e.prev_event_hash == prev;
    const bool sig_ok = key && sig && core::crypto::ed25519_verify(e.event_hash, *sig, *key);
    if (!hash_ok) problems.push_back("event " + std::to_string(e.seq) + ": hash mismatch");
    if (!link_ok) problems.push_back("event " + std::to_string(e.seq) + ": broken link");
    if (!sig_ok) problems.push_back("event " + std::to_string(e.seq) + ": bad signature");
    prev = e.event_hash;
    list.push_back({{"seq", e.seq},
                    {"event", event},
                    {"eventHash", e.event_hash},
                    {"signature", record.value("signature", "")},
                    {"publicKeyPem", record.value("publicKeyPem", "")}});
  }
  co_return net::Response::json(200, {{"version", events->empty() ? 0 : events->back().seq},
                                      {"chainHead", prev},
                                      {"verified", problems.empty()},
                                      {"problems", problems},
                                      {"events", list}});
}

}  // namespace detail

asio::awaitable<core::Result<store::BlacklistEvent>> auto_blacklist(ServicePtr svc,
                                                                    std::string agent_id,
                                                                    std::string reason_code,
                                                                    std::string reason,
                                                                    std::string evidence_json) {
  using nlohmann::json;
  constexpr const char* kReporter = "behavioral_monitoring";
  const std::int64_t now = svc->now();
  json evidence = json::parse(evidence_json, nullptr, false);
  json event = {{"eventId", new_uuid()},
                {"action", "add"},
                {"agentId", agent_id},
                {"reasonCode", reason_code},
                {"reason", reason},
                {"evidenceHashSha256", core::crypto::sha256_hex(evidence_json)},
                {"evidenceRef", ""},
                {"reporterId", kReporter},
                {"reportedBy", kReporter},
                {"reporterSignatureVerified", false},
                {"sourceCoordinatorId", svc->options.peer_id},
                {"expiresAtMs", json()},
                {"evidence", evidence.is_discarded() ? json(evidence_json) : evidence}};
  store::BlacklistEntry entry;
  entry.agent_id = agent_id;
  entry.reason_code = reason_code;
  entry.reason = reason;
  entry.reporter_id = kReporter;
  entry.created_at_ms = now;
  auto append = detail::append_event(svc, std::move(event), entry);
  co_return co_await std::move(append);
}

std::optional<std::string> blacklist_reason(store::Store& st, const std::string& agent_id) {
  auto entry = st.get_blacklist(agent_id);
  if (!entry || !*entry) return std::nullopt;  // a store error is reported by the route's own call
  return (*entry)->reason_code + ": " + (*entry)->reason;
}

void add_blacklist_routes(net::Router& router, ServicePtr svc) {
  router.add("GET", "/security/blacklist",
             [svc](net::Request r) { return detail::blacklist_list(svc, std::move(r)); });
  router.add("GET", "/security/blacklist/audit",
             [svc](net::Request r) { return detail::blacklist_audit(svc, std::move(r)); });
  router.add("POST", "/security/blacklist",
             [svc](net::Request r) { return detail::blacklist_add(svc, std::move(r)); });
  router.add("DELETE", "/security/blacklist/:agentId",
             [svc](net::Request r) { return detail::blacklist_remove(svc, std::move(r)); });
}

}  // namespace edgecoder::coordinator
