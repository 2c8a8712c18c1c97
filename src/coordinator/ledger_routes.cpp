// Credits and the ordering chain (reference §2.7, §3.8, §8.1).
//
// Credit accrual: each accepted result (the first for its subtask from its current lease holder;
// never a duplicate or a stale one) earns the agent's account, in the transaction that accepts
// it, one `earn` entry with tx_id "earn:<subtaskId>": seconds (the reported duration, at most the
// subtask's timeout) x rate (cpu 1.0/s, gpu 4.0/s by the task's resourceClass) x quality (1.0
// ok, 0.6 failed; clamped to 0.5..1.5) x the load multiplier, in millicredits.
//
// The ordering chain: the store appends this coordinator's signed task events in the
// transactions that make them happen (store::ChainStore); GET /ledger/verify re-walks the chain
// from the store with this coordinator's public key.
//
// Routes (mesh token): GET /credits/:accountId/balance, GET /credits/:accountId/history,
// GET /ledger/verify, GET /ledger/snapshot.
#include <algorithm>
#include <cmath>
#include <limits>

#include "api/json_reader.h"
#include "coordinator/service.h"
#include "core/crypto.h"
#include "core/log.h"

namespace edgecoder::coordinator {

namespace {

constexpr std::int64_t kLoadRefreshMs = 5'000;
constexpr int kVerifyPage = 1'000;

}  // namespace

double load_multiplier(std::int64_t queued, std::int64_t agents) {
  const double pressure =
      agents > 0 ? static_cast<double>(queued) / static_cast<double>(agents) : 2.0;
  if (pressure <= 0.5) return 0.8;
  if (pressure <= 1.0) return 1.0;
  if (pressure <= 2.0) return 1.25;
  return 1.6;
}

std::int64_t earned_millicredits(std::int64_t duration_ms, std::int64_t timeout_ms,
                                 std::string_view resource_class, bool ok, double load) {
  std::int64_t ms = std::max<std::int64_t>(0, duration_ms);
  if (timeout_ms > 0) ms = std::min(ms, timeout_ms);
  const double rate = resource_class == "gpu" ? 4.0 : 1.0;
  const double quality = std::clamp(ok ? 1.0 : 0.6, 0.5, 1.5);
  return std::llround(static_cast<double>(ms) * rate * quality * load);  // ms x credits/s
}

// A credit amount as JSON: integral credits as an integer (as JavaScript writes them).
nlohmann::ordered_json credits_number(std::int64_t millicredits) {
  if (millicredits % 1000 == 0) return nlohmann::ordered_json(millicredits / 1000);
  return nlohmann::ordered_json(static_cast<double>(millicredits) / 1000.0);
}

std::function<bool(const store::Subtask&, store::Earning&)> make_earning(std::string agent_id,
                                                                         bool ok,
                                                                         std::int64_t duration_ms,
                                                                         double load) {
  return [agent_id = std::move(agent_id), ok, duration_ms, load](const store::Subtask& subtask,
                                                                 store::Earning& earning) {
    auto payload = nlohmann::json::parse(subtask.payload_json, nullptr, false);
    std::string resource_class = "cpu";
    if (payload.is_object()) {
      auto meta = payload.find("projectMeta");
      if (meta != payload.end() && meta->is_object()) {
        auto rc = meta->find("resourceClass");
        if (rc != meta->end() && rc->is_string() && *rc == "gpu") resource_class = "gpu";
      }
    }
    const std::int64_t amount =
        earned_millicredits(duration_ms, subtask.timeout_ms, resource_class, ok, load);
    if (amount <= 0) return false;
    // The reward account: ownership links do not exist here, so the agent's own account.
    earning.entry.tx_id = "earn:" + subtask.id;
    earning.entry.account_id = agent_id;
    earning.entry.kind = "earn";
    earning.entry.amount_millicredits = amount;
    earning.entry.reason = "compute_contribution";
    earning.entry.task_id = subtask.task_id;
    nlohmann::ordered_json p;
    p["sourceAgentId"] = agent_id;
    p["accountId"] = agent_id;
    p["credits"] = credits_number(amount);
    p["durationMs"] = duration_ms;
    p["ok"] = ok;
    p["resourceClass"] = resource_class;
    p["millicredits"] = amount;
    p["loadMultiplier"] = load;
    earning.payload_json = p.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    return true;
  };
}

asio::awaitable<double> current_load_multiplier(ServicePtr svc) {
  const std::int64_t now = svc->now();
  const std::int64_t read_at = svc->load_read_at_ms.load();
  if (read_at != std::numeric_limits<std::int64_t>::min() && now - read_at < kLoadRefreshMs &&
      now >= read_at) {
    co_return svc->load_multiplier.load();
  }
  store::Store* st = svc->store.get();
  const std::int64_t online_since = now - svc->options.agent_online_ms;
  auto call = st->run([st, online_since] { return st->queue_counts(online_since); });
  auto counts = co_await std::move(call);
  if (!counts) co_return svc->load_multiplier.load();  // keep the last one; the result matters more
  const double m = load_multiplier(counts->queued, counts->agents_online);
  svc->load_multiplier.store(m);
  svc->load_read_at_ms.store(now);
  co_return m;
}

store::ChainSigner chain_signer(const Service& svc) {
  store::ChainSigner signer;
  signer.coordinator_id = svc.options.peer_id;
  signer.sign = [secret = svc.signing_key.secret_key](std::string_view hash) -> std::string {
    auto sig = core::crypto::ed25519_sign(hash, secret);
    return sig ? core::crypto::base64_encode(*sig) : std::string();
  };
  return signer;
}

ChainVerdict verify_chain_records(const std::vector<store::ChainRecord>& records,
                                  std::string_view public_key, ChainVerdict state) {
  for (const auto& r : records) {
    const std::int64_t expected = state.count + 1;
    auto fail = [&](const char* reason) {
      state.ok = false;
      state.reason = reason;
      state.at_sequence = expected;
      return state;
    };
    if (r.sequence != expected) return fail("invalid_sequence");
    if (r.prev_hash != state.head) return fail("invalid_prev_hash");
    if (store::chain_record_hash(r) != r.hash) return fail("hash_mismatch");
    auto sig = core::crypto::base64_decode(r.signature);
    if (!sig || !core::crypto::ed25519_verify(r.hash, *sig, public_key)) {
      return fail("invalid_signature");
    }
    state.count = r.sequence;
    state.head = r.hash;
  }
  return state;
}

namespace ledger_routes {

using nlohmann::json;

json chain_record_json(const store::ChainRecord& r) {
  json j = {{"id", r.id}, {"eventType", r.event_type}, {"taskId", r.task_id}};
  if (!r.subtask_id.empty()) j["subtaskId"] = r.subtask_id;
  j["actorId"] = r.actor_id;
  j["sequence"] = r.sequence;
  j["issuedAtMs"] = r.issued_at_ms;
  j["prevHash"] = r.prev_hash;
  j["coordinatorId"] = r.coordinator_id;
  if (!r.payload_json.empty()) j["payloadJson"] = r.payload_json;
  j["hash"] = r.hash;
  j["signature"] = r.signature;
  return j;
}

double as_credits(std::int64_t millicredits) { return static_cast<double>(millicredits) / 1000.0; }

json credit_tx_json(const store::LedgerEntry& e) {
  json j = {{"txId", e.tx_id},
            {"accountId", e.account_id},
            {"type", e.kind},
            {"credits", as_credits(e.amount_millicredits)},
            {"millicredits", e.amount_millicredits},
            {"reason", e.reason},
            {"timestampMs", e.created_at_ms},
            {"seq", e.seq}};
  if (!e.task_id.empty()) j["relatedTaskId"] = e.task_id;
  return j;
}

std::optional<net::Response> bad_account_id(const std::string& id) {
  if (api::is_identifier(id)) return std::nullopt;
  return error_response(400, "invalid_account_id",
                        "account id '" + id.substr(0, 64) +
                            "': expected 1-128 characters of letters, digits and . _ : @ + # / -");
}

asio::awaitable<net::Response> credits_balance(ServicePtr svc, net::Request request) {
  const std::string account = request.param("accountId");
  if (auto bad = bad_account_id(account)) co_return std::move(*bad);
  store::Store* st = svc->store.get();
  auto call = st->run([st, account] { return st->balance(account); });
  auto balance = co_await std::move(call);
  if (!balance) co_return net::Response::error(balance.error());
  co_return net::Response::json(200, {{"accountId", account},
                                      {"balance", as_credits(*balance)},
                                      {"balanceMillicredits", *balance}});
}

asio::awaitable<net::Response> credits_history(ServicePtr svc, net::Request request) {
  const std::string account = request.param("accountId");
  if (auto bad = bad_account_id(account)) co_return std::move(*bad);
  auto limit = request.query_int("limit", 1, 500, 50);
  if (!limit) co_return net::Response::error(limit.error());
  const int n = static_cast<int>(*limit);
  store::Store* st = svc->store.get();
  auto call = st->run([st, account, n] { return st->recent_ledger(account, n); });
  auto entries = co_await std::move(call);
  if (!entries) co_return net::Response::error(entries.error());
  json history = json::array();
  for (const auto& e : *entries) history.push_back(credit_tx_json(e));
  co_return net::Response::json(200, {{"accountId", account}, {"history", std::move(history)}});
}

asio::awaitable<net::Response> ledger_verify(ServicePtr svc, net::Request) {
  store::Store* st = svc->store.get();
  const std::string coordinator = svc->options.peer_id;
  const std::string public_key = svc->signing_key.public_key;
  // The whole walk (store reads and signature checks) runs on the store's pool, page by page.
  auto call = st->run([st, coordinator, public_key]() -> core::Result<ChainVerdict> {
    ChainVerdict v;
    for (;;) {
      auto page = st->list_chain(coordinator, v.count, kVerifyPage);
      if (!page) return page.error();
      v = verify_chain_records(*page, public_key, std::move(v));
      if (!v.ok || page->size() < static_cast<std::size_t>(kVerifyPage)) break;
    }
    if (!v.ok) return v;
    // A chain cut short at its end: the head the appends moved says more records exist.
    auto head = st->chain_head(coordinator);
    if (!head) return head.error();
    if (head->first != v.count || head->second != v.head) {
      v.ok = false;
      v.reason = "invalid_sequence";
      v.at_sequence = v.count + 1;
    }
    return v;
  });
  auto verdict = co_await std::move(call);
  if (!verdict) co_return net::Response::error(verdict.error());
  if (!verdict->ok) {
    core::log::warn("coordinator", "ledger_verify_failed",
                    {{"reason", verdict->reason}, {"atSequence", verdict->at_sequence}});
    co_return net::Response::json(200, {{"ok", false},
                                        {"reason", verdict->reason},
                                        {"atSequence", verdict->at_sequence},
                                        {"coordinatorId", coordinator}});
  }
  co_return net::Response::json(200, {{"ok", true},
                                      {"count", verdict->count},
                                      {"head", verdict->head},
                                      {"coordinatorId", coordinator}});
}

asio::awaitable<net::Response> ledger_snapshot(ServicePtr svc, net::Request request) {
  auto after = request.query_int("afterSequence", 0, std::numeric_limits<std::int64_t>::max(), 0);
  if (!after) co_return net::Response::error(after.error());
  auto limit = request.query_int("limit", 1, 5000, 1000);
  if (!limit) co_return net::Response::error(limit.error());
  store::Store* st = svc->store.get();
  const std::string coordinator = svc->options.peer_id;
  const std::int64_t after_seq = *after;
  const int n = static_cast<int>(*limit);
  auto call = st->run([st, coordinator, after_seq,
                       n]() -> core::Result<std::pair<std::vector<store::ChainRecord>,
                                                      std::optional<store::ChainRecord>>> {
    auto records = st->list_chain(coordinator, after_seq, n);
    if (!records) return records.error();
    auto head = st->chain_head(coordinator);
    if (!head) return head.error();
    std::optional<store::ChainRecord> last;
    if (head->first > 0) {
      auto tail = st->list_chain(coordinator, head->first - 1, 1);
      if (!tail) return tail.error();
      if (!tail->empty()) last = tail->front();
    }
    return std::make_pair(std::move(*records), std::move(last));
  });
  auto got = co_await std::move(call);
  if (!got) co_return net::Response::error(got.error());
  json records = json::array();
  for (const auto& r : got->first) records.push_back(chain_record_json(r));
  json proof = nullptr;
  if (got->second) {
    const auto& h = *got->second;
    proof = {{"recordId", h.id},
             {"hash", h.hash},
             {"prevHash", h.prev_hash},
             {"sequence", h.sequence},
             {"signerPeerId", coordinator}};
  }
  json out = {{"coordinatorId", coordinator},
              {"publicKeyPem", svc->public_key_pem()},
              {"records", std::move(records)},
              {"proof", std::move(proof)}};
  if (!got->first.empty() && got->first.size() == static_cast<std::size_t>(n)) {
    out["nextAfterSequence"] = got->first.back().sequence;
  }
  co_return net::Response::json(200, out);
}

}  // namespace ledger_routes

void add_ledger_routes(net::Router& router, ServicePtr svc) {
  router.add("GET", "/credits/:accountId/balance",
             [svc](net::Request r) { return ledger_routes::credits_balance(svc, std::move(r)); });
  router.add("GET", "/credits/:accountId/history",
             [svc](net::Request r) { return ledger_routes::credits_history(svc, std::move(r)); });
  router.add("GET", "/ledger/verify",
             [svc](net::Request r) { return ledger_routes::ledger_verify(svc, std::move(r)); });
  router.add("GET", "/ledger/snapshot",
             [svc](net::Request r) { return ledger_routes::ledger_snapshot(svc, std::move(r)); });
}

}  // namespace edgecoder::coordinator
