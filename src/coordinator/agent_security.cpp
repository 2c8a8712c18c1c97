// Signed agent requests (upstream-coordinator.md §5.2), the per-agent rate limit (§5.3) and a
// conservative behaviour monitor (§5.7).
//
// A signed request carries x-agent-id, x-timestamp-ms, x-nonce, x-body-sha256 and x-signature
// (base64 Ed25519 over "timestamp\nnonce\nMETHOD\npath\nbodySha256") and is checked against the
// public key the agent registered. The nonce and the rate-limit counter live in the store
// (one write for both), so every coordinator on one PostgreSQL shares the replay window and the
// limit.
//
// Auto-blacklisting only acts on evidence honest work cannot produce: signatures that do not
// verify with the registered key and replayed nonces (BHV005), results for a lease attempt
// another agent held (forged results), registration storms (BHV008). Clock skew, a body that
// does not match its hash (a re-encoding proxy), speed, empty or identical outputs are not
// evidence: the last three are per-process warnings (BHV001-003) shown in metrics and the
// agent's diagnostics.
#include <charconv>
#include <cstdlib>

#include "api/coordinator.h"
#include "coordinator/service.h"
#include "core/crypto.h"
#include "core/log.h"

namespace edgecoder::coordinator {

namespace {

struct EvidenceRule {
  std::string_view name;  // the store counter's kind
  std::string_view code;  // upstream rule id
  std::string_view reason_code;
  std::string_view what;
};

constexpr EvidenceRule kEvidenceRules[] = {
    {"protocol_abuse", "BHV005", "credential_abuse",
     "signed requests whose signature does not verify with the registered key, or replayed "
     "nonces"},
    {"forged_result", "BHV011", "forged_results",
     "results for lease attempts that another agent held"},
    {"registration", "BHV008", "dos_behavior", "registrations"},
};

const EvidenceRule* evidence_rule(std::string_view name) {
  for (const auto& r : kEvidenceRules) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

std::int64_t evidence_threshold(const AgentSecurityOptions& o, std::string_view name) {
  if (name == "protocol_abuse") return o.protocol_abuse_threshold;
  if (name == "forged_result") return o.forged_result_threshold;
  return o.registration_threshold;
}

core::metrics::Counter* evidence_counter(const CoordinatorMetrics& m, std::string_view name) {
  if (name == "protocol_abuse") return m.evidence_protocol_abuse;
  if (name == "forged_result") return m.evidence_forged_result;
  return m.evidence_registration;
}

net::Response signature_invalid(std::string_view check, std::string_view explanation) {
  return error_response(401, "signature_invalid", check, {{"reason", explanation}});
}

bool is_hex64(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
}

std::string lower(std::string s) {
  for (auto& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

bool printable_token(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

}  // namespace

SignedRequest signed_request_of(const net::Request& request) {
  SignedRequest s;
  int present = 0;
  auto read = [&](std::string_view name, std::string& out) {
    if (auto h = request.header(name)) {
      out = std::string(*h);
      ++present;
    }
  };
  read("x-agent-id", s.agent_id);
  read("x-timestamp-ms", s.timestamp);
  read("x-nonce", s.nonce);
  read("x-body-sha256", s.body_sha256);
  read("x-signature", s.signature);
  s.present = present == 5;
  s.method = request.method;
  s.path = request.path;
  s.remote_address = request.remote_address;
  if (s.present) s.actual_body_sha256 = core::crypto::sha256_hex(request.body);
  return s;
}

asio::awaitable<std::optional<net::Response>> verify_agent_request(ServicePtr svc, SignedRequest sr,
                                                                   std::string body_agent_id) {
  const AgentSecurityOptions& o = svc->options.security;
  if (!sr.present) {
    if (o.require_signed) {
      svc->metrics.signed_refused->inc();
      co_return error_response(
          401, "signature_required",
          "this coordinator requires signed agent requests (REQUIRE_SIGNED_AGENTS): send "
          "x-agent-id, x-timestamp-ms, x-nonce, x-body-sha256 and x-signature");
    }
    svc->metrics.signed_unsigned->inc();
    co_return std::nullopt;
  }
  if (sr.agent_id != body_agent_id) {
    svc->metrics.signed_refused->inc();
    co_return error_response(401, "agent_id_mismatch",
                             "x-agent-id does not name the agentId of the body");
  }
  // Checks that need no key and that honest agents can fail (a wrong clock, a proxy that
  // re-encodes the body): refused, never counted as evidence.
  std::int64_t ts = 0;
  const char* end = sr.timestamp.data() + sr.timestamp.size();
  auto parsed = std::from_chars(sr.timestamp.data(), end, ts);
  if (sr.timestamp.empty() || sr.timestamp.size() > 16 || parsed.ec != std::errc() ||
      parsed.ptr != end || ts < 0) {
    svc->metrics.signed_refused->inc();
    co_return signature_invalid("timestamp_invalid", "x-timestamp-ms is not a decimal ms count");
  }
  const std::int64_t now = svc->now();
  if (std::llabs(now - ts) > o.max_skew_ms) {
    svc->metrics.signed_refused->inc();
    co_return signature_invalid("timestamp_skew",
                                "x-timestamp-ms is more than SECURITY_MAX_SKEW_MS from the "
                                "coordinator's clock");
  }
  if (!is_hex64(sr.body_sha256) || lower(sr.body_sha256) != sr.actual_body_sha256) {
    svc->metrics.signed_refused->inc();
    co_return signature_invalid("body_hash_mismatch",
                                "x-body-sha256 is not the SHA-256 of the body received");
  }
  if (!printable_token(sr.nonce)) {
    svc->metrics.signed_refused->inc();
    co_return signature_invalid("nonce_invalid", "x-nonce must be 1..128 printable characters");
  }
  store::Store* st = svc->store.get();
  const std::string agent_id = sr.agent_id;
  auto get = st->run([st, agent_id] { return st->get_agent(agent_id); });
  auto agent = co_await std::move(get);
  if (!agent) {
    if (agent.error().code == core::Errc::not_found) co_return std::nullopt;
    co_return net::Response::error(agent.error());
  }
  if (agent->info.public_key.empty()) {
    svc->metrics.signed_refused->inc();
    co_return signature_invalid("no_registered_key",
                                "the agent registered no publicKeyPem; register it again with "
                                "its key");
  }
  auto key = core::crypto::ed25519_public_key_parse(agent->info.public_key);
  if (!key) {
    svc->metrics.signed_refused->inc();
    co_return signature_invalid("registered_key_unusable",
                                "the publicKeyPem the agent registered is not an Ed25519 key");
  }
  auto signature = core::crypto::base64_decode(sr.signature);
  const std::string canonical = api::agent_request_canonical(sr.timestamp, sr.nonce, sr.method,
                                                             sr.path, sr.actual_body_sha256);
  if (!signature || !core::crypto::ed25519_verify(canonical, *signature, *key)) {
    svc->metrics.signed_refused->inc();
    nlohmann::json detail = {{"check", "signature_mismatch"},
                             {"path", sr.path},
                             {"nonce", sr.nonce},
                             {"timestampMs", ts},
                             {"remoteAddress", sr.remote_address}};
    auto note = record_evidence(svc, agent_id, "protocol_abuse", std::move(detail));
    co_await std::move(note);
    co_return signature_invalid("signature_mismatch",
                                "x-signature does not verify with the agent's registered key");
  }
  store::SignedRequestAdmission admit;
  admit.agent_id = agent_id;
  admit.nonce = sr.nonce;
  // Kept at least until the timestamp leaves the skew window, so a pruned nonce cannot be
  // replayed.
  admit.nonce_expires_at_ms = std::max(now + o.nonce_ttl_ms, ts + o.max_skew_ms + 1);
  admit.rate_max = o.rate_max;
  admit.rate_window_ms = o.rate_window_ms;
  auto call = st->run_write([st, admit] { return st->admit_signed_request(admit); });
  auto admitted = co_await std::move(call);
  if (!admitted) co_return net::Response::error(admitted.error());
  if (admitted->admission == store::Admission::replay) {
    svc->metrics.signed_replay->inc();
    nlohmann::json detail = {{"check", "nonce_replayed"},
                             {"path", sr.path},
                             {"nonce", sr.nonce},
                             {"timestampMs", ts},
                             {"remoteAddress", sr.remote_address}};
    auto note = record_evidence(svc, agent_id, "protocol_abuse", std::move(detail));
    co_await std::move(note);
    co_return signature_invalid("nonce_replayed",
                                "x-nonce was already used within SECURITY_NONCE_TTL_MS");
  }
  if (admitted->admission == store::Admission::rate_limited) {
    svc->metrics.signed_rate_limited->inc();
    const std::int64_t retry_s = std::max<std::int64_t>(1, (admitted->retry_after_ms + 999) / 1000);
    net::Response r = error_response(
        429, "rate_limited",
        "more than AGENT_RATE_LIMIT_MAX signed requests in this AGENT_RATE_LIMIT_WINDOW_MS",
        {{"retryAfterMs", admitted->retry_after_ms}});
    r.set_header("Retry-After", std::to_string(retry_s));
    co_return r;
  }
  svc->metrics.signed_accepted->inc();
  co_return std::nullopt;
}

asio::awaitable<void> record_evidence(ServicePtr svc, std::string agent_id, std::string rule,
                                      nlohmann::json detail) {
  const EvidenceRule* r = evidence_rule(rule);
  if (r == nullptr) co_return;
  const AgentSecurityOptions& o = svc->options.security;
  evidence_counter(svc->metrics, rule)->inc();
  store::Store* st = svc->store.get();
  const std::int64_t window = o.behavior_window_ms;
  auto bump = st->run_write(
      [st, agent_id, rule, window] { return st->bump_agent_counter(agent_id, rule, window); });
  auto hit = co_await std::move(bump);
  if (!hit) {
    core::log::warn("coordinator", "behavior_count_failed",
                    {{"agent", agent_id}, {"rule", rule}, {"detail", hit.error().detail}});
    co_return;
  }
  const std::int64_t threshold = evidence_threshold(o, rule);
  // A registration is ordinary until a storm builds up: logged only from half the threshold.
  const bool ordinary = rule == "registration" && hit->count * 2 < threshold;
  core::log::write(ordinary ? core::log::Level::debug : core::log::Level::warn, "coordinator",
                   "agent_behavior_evidence",
                   {{"agent", agent_id},
                    {"rule", std::string(r->code)},
                    {"kind", rule},
                    {"count", hit->count},
                    {"threshold", threshold},
                    {"check", detail.value("check", "")},
                    {"remote", detail.value("remoteAddress", "")}});
  if (!o.auto_blacklist || threshold <= 0 || hit->count < threshold) co_return;
  auto check = st->run([st, agent_id] { return blacklist_reason(*st, agent_id); });
  auto already = co_await std::move(check);
  if (already) co_return;
  nlohmann::json evidence = {{"rule", r->code},
                             {"kind", rule},
                             {"agentId", agent_id},
                             {"count", hit->count},
                             {"threshold", threshold},
                             {"windowMs", window},
                             {"windowStartMs", hit->window_start_ms},
                             {"coordinatorId", svc->options.peer_id},
                             {"last", detail}};
  const std::string reason = std::string(r->code) + ": " + std::to_string(hit->count) + " " +
                             std::string(r->what) + " within " + std::to_string(window / 1000) +
                             " s (threshold " + std::to_string(threshold) + ")";
  auto add = auto_blacklist(svc, agent_id, std::string(r->reason_code), reason, evidence.dump());
  auto added = co_await std::move(add);
  if (!added) {
    core::log::error("coordinator", "auto_blacklist_failed",
                     {{"agent", agent_id}, {"detail", added.error().detail}});
    co_return;
  }
  svc->metrics.auto_blacklisted->inc();
  core::log::warn("coordinator", "agent_auto_blacklisted",
                  {{"agent", agent_id},
                   {"rule", std::string(r->code)},
                   {"reason_code", std::string(r->reason_code)},
                   {"version", added->seq}});
}

std::vector<ResultWarnings::Fired> ResultWarnings::observe(const std::string& agent_id,
                                                           const std::string& output_sha256,
                                                           bool empty, std::int64_t duration_ms,
                                                           std::int64_t now_ms,
                                                           std::int64_t window_ms) {
  std::vector<Fired> fired;
  std::lock_guard lock(mu_);
  if (agents_.size() > 10'000 && agents_.find(agent_id) == agents_.end()) {
    // Bounded: forget agents whose window is over.
    for (auto it = agents_.begin(); it != agents_.end();) {
      it = now_ms - it->second.window_start_ms >= window_ms ? agents_.erase(it) : std::next(it);
    }
  }
  State& s = agents_[agent_id];
  if (s.results == 0 || now_ms - s.window_start_ms >= window_ms) {
    std::string last = s.last_hash;
    s = State{};
    s.window_start_ms = now_ms;
    s.last_hash = std::move(last);
  }
  ++s.results;
  s.total_ms += std::max<std::int64_t>(0, duration_ms);
  if (duration_ms < 500) ++s.fast;
  if (empty) ++s.empty;
  s.identical_run = output_sha256 == s.last_hash ? s.identical_run + 1 : 1;
  s.last_hash = output_sha256;
  if (!s.fired_fast && s.fast >= 3 && s.total_ms < 1000LL * s.results) {
    s.fired_fast = true;
    fired.push_back({"BHV001", std::to_string(s.fast) +
                                   " results under 500 ms (mean under 1 s) in this window"});
  }
  if (!s.fired_empty && s.empty >= 5 && s.empty * 10 > s.results * 6) {
    s.fired_empty = true;
    fired.push_back({"BHV002", std::to_string(s.empty) + " empty outputs out of " +
                                   std::to_string(s.results) + " results in this window"});
  }
  if (!s.fired_identical && s.identical_run >= 3) {
    s.fired_identical = true;
    fired.push_back({"BHV003", std::to_string(s.identical_run) + " identical outputs in a row"});
  }
  return fired;
}

asio::awaitable<void> note_result(ServicePtr svc, std::string agent_id, std::string output_sha256,
                                  bool empty, std::int64_t duration_ms) {
  auto fired = svc->warnings.observe(agent_id, output_sha256, empty, duration_ms, svc->now(),
                                     svc->options.security.behavior_window_ms);
  if (fired.empty()) co_return;
  std::vector<store::DiagnosticEvent> events;
  for (const auto& f : fired) {
    if (f.rule == "BHV001") svc->metrics.warning_fast->inc();
    if (f.rule == "BHV002") svc->metrics.warning_empty->inc();
    if (f.rule == "BHV003") svc->metrics.warning_identical->inc();
    core::log::info("coordinator", "agent_behavior_warning",
                    {{"agent", agent_id}, {"rule", f.rule}, {"detail", f.message}});
    events.push_back(
        store::DiagnosticEvent{0, svc->now(),
                               "behaviour warning " + f.rule + ": " + f.message +
                                   " (a warning only: cache hits and no-op programs do this too)",
                               "behavioral_monitoring"});
  }
  store::Store* st = svc->store.get();
  const int keep = svc->options.diagnostics_keep;
  auto call = st->run_write(
      [st, agent_id, events, keep] { return st->append_diagnostics(agent_id, events, keep); });
  auto stored = co_await std::move(call);
  if (!stored) {
    core::log::warn("coordinator", "behavior_warning_not_stored",
                    {{"agent", agent_id}, {"detail", stored.error().detail}});
  }
}

}  // namespace edgecoder::coordinator
