// The store logic, written once over sql::Db for both backends. Every mutating operation is one
// Db::write job (atomic; acknowledged only after commit). PostgreSQL-only row locks
// (FOR UPDATE, SKIP LOCKED) are spliced in by dialect; SQLite has a single writer per file.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/crypto.h"
#include "store/sql.h"

namespace edgecoder::store::sql {

namespace {

constexpr const char* kSqlAgentCols =
    "id, os, version, mode, client_type, max_concurrent_tasks, sandbox_mode, active_model, "
    "public_key, metadata_json, approval, approval_actor, approval_changed_at_ms, "
    "registered_at_ms, last_seen_ms, languages, telemetry_json, runtime_json, last_claim_ms, "
    "mode_override";

constexpr const char* kSqlSubtaskCols =
    "id, task_id, idx, kind, language, input, payload_json, project_id, requested_model, "
    "priority, timeout_ms, max_attempts, state, attempt, holder, lease_expires_at_ms, "
    "last_error, created_at_ms, finished_at_ms, requires_sandbox, releases";

constexpr const char* kSqlTerminal = "('completed', 'failed', 'cancelled')";

std::string sql_join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (item.empty()) continue;
    if (!out.empty()) out += ',';
    out += item;
  }
  return out;
}

std::vector<std::string> sql_split(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Agent sql_agent_from(const Row& r) {
  Agent a;
  a.info.id = r.s(0);
  a.info.os = r.s(1);
  a.info.version = r.s(2);
  a.info.mode = r.s(3);
  a.info.client_type = r.s(4);
  a.info.max_concurrent_tasks = static_cast<int>(r.i(5));
  a.info.sandbox_mode = r.s(6);
  a.info.active_model = r.s(7);
  a.info.public_key = r.s(8);
  a.info.metadata_json = r.s(9);
  a.approval = parse_approval(r.s(10)).value_or(Approval::pending);
  a.approval_actor = r.s(11);
  a.approval_changed_at_ms = r.i(12);
  a.registered_at_ms = r.i(13);
  a.last_seen_ms = r.i(14);
  a.info.languages = sql_split(r.s(15));
  a.info.telemetry_json = r.s(16);
  a.info.runtime_json = r.s(17);
  a.last_claim_ms = r.i(18);
  a.mode_override = r.s(19);
  return a;
}

Subtask sql_subtask_from(const Row& r) {
  Subtask s;
  s.id = r.s(0);
  s.task_id = r.s(1);
  s.index = static_cast<int>(r.i(2));
  s.kind = r.s(3);
  s.language = r.s(4);
  s.input = r.s(5);
  s.payload_json = r.s(6);
  s.project_id = r.s(7);
  s.requested_model = r.s(8);
  s.priority = static_cast<int>(r.i(9));
  s.timeout_ms = r.i(10);
  s.max_attempts = static_cast<int>(r.i(11));
  s.state = parse_subtask_state(r.s(12)).value_or(SubtaskState::queued);
  s.attempt = static_cast<int>(r.i(13));
  s.holder = r.s(14);
  s.lease_expires_at_ms = r.i(15);
  s.last_error = r.s(16);
  s.created_at_ms = r.i(17);
  s.finished_at_ms = r.i(18);
  s.requires_sandbox = r.i(19) != 0;
  s.releases = static_cast<int>(r.i(20));
  return s;
}

BlacklistEntry sql_blacklist_from(const Row& r) {
  BlacklistEntry e;
  e.agent_id = r.s(0);
  e.reason_code = r.s(1);
  e.reason = r.s(2);
  e.reporter_id = r.s(3);
  e.record_json = r.s(4);
  e.created_at_ms = r.i(5);
  e.expires_at_ms = r.i(6);
  return e;
}

constexpr const char* kSqlTokenCols =
    "id, token_hash, label, created_by, created_at_ms, revoked_at_ms, last_used_at_ms, uses";

RegistrationToken sql_token_from(const Row& r) {
  RegistrationToken t;
  t.id = r.s(0);
  t.token_hash = r.s(1);
  t.label = r.s(2);
  t.created_by = r.s(3);
  t.created_at_ms = r.i(4);
  t.revoked_at_ms = r.i(5);
  t.last_used_at_ms = r.i(6);
  t.uses = r.i(7);
  return t;
}

SubtaskResult sql_result_from(const Row& row) {
  SubtaskResult res;
  res.subtask_id = row.s(0);
  res.task_id = row.s(1);
  res.agent_id = row.s(2);
  res.attempt = static_cast<int>(row.i(3));
  res.ok = row.i(4) != 0;
  res.output = row.s(5);
  res.error = row.s(6);
  res.duration_ms = row.i(7);
  res.created_at_ms = row.i(8);
  res.iterations = static_cast<int>(row.i(9));
  res.escalated = row.i(10) != 0;
  return res;
}

LedgerEntry sql_ledger_from(const Row& r) {
  LedgerEntry e;
  e.seq = r.i(0);
  e.tx_id = r.s(1);
  e.account_id = r.s(2);
  e.kind = r.s(3);
  e.amount_millicredits = r.i(4);
  e.reason = r.s(5);
  e.task_id = r.s(6);
  e.created_at_ms = r.i(7);
  return e;
}

ChainRecord sql_chain_from(const Row& r) {
  ChainRecord c;
  c.coordinator_id = r.s(0);
  c.sequence = r.i(1);
  c.id = r.s(2);
  c.event_type = r.s(3);
  c.task_id = r.s(4);
  c.subtask_id = r.s(5);
  c.actor_id = r.s(6);
  c.issued_at_ms = r.i(7);
  c.prev_hash = r.s(8);
  c.payload_json = r.s(9);
  c.hash = r.s(10);
  c.signature = r.s(11);
  return c;
}

constexpr const char* kSqlChainCols =
    "coordinator_id, sequence, id, event_type, task_id, subtask_id, actor_id, issued_at_ms, "
    "prev_hash, payload_json, hash, signature";

// A random RFC 4122 version 4 UUID.
std::string sql_uuid() {
  std::string h = core::crypto::random_hex(16);
  h[12] = '4';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

ChainRecord sql_chain_draft(std::string event_type, std::string task_id, std::string subtask_id,
                            std::string actor_id, std::string payload_json = "") {
  ChainRecord c;
  c.event_type = std::move(event_type);
  c.task_id = std::move(task_id);
  c.subtask_id = std::move(subtask_id);
  c.actor_id = std::move(actor_id);
  c.payload_json = std::move(payload_json);
  return c;
}

std::string sql_limit(int limit) {
  return limit > 0 ? " LIMIT " + std::to_string(limit) : std::string();
}

core::Error sql_invalid(std::string detail) {
  return core::Error(core::Errc::invalid_argument, std::move(detail));
}

core::Error sql_not_found(std::string what) {
  return core::Error(core::Errc::not_found, std::move(what));
}

constexpr const char* kSqlOrchestrationCols =
    "agent_id, rollout_id, provider, model, status, message, progress_pct, requested_by, "
    "requested_at_ms, updated_at_ms";

Orchestration sql_orchestration_from(const Row& r) {
  Orchestration o;
  o.agent_id = r.s(0);
  o.rollout_id = r.s(1);
  o.provider = r.s(2);
  o.model = r.s(3);
  o.status = r.s(4);
  o.message = r.s(5);
  o.progress_pct = static_cast<int>(r.i(6));
  o.requested_by = r.s(7);
  o.requested_at_ms = r.i(8);
  o.updated_at_ms = r.i(9);
  return o;
}

}  // namespace

// Not in the anonymous namespace: a unity build may place coroutine frames next to it.
class SqlStore final : public Store {
 public:
  SqlStore(std::unique_ptr<Db> db, std::function<std::int64_t()> clock)
      : db_(std::move(db)),
        clock_(clock ? std::move(clock) : std::function<std::int64_t()>(system_now_ms)),
        pg_(db_->dialect() == Dialect::postgres),
        for_update_(pg_ ? " FOR UPDATE" : ""),
        mesh_(make_sql_agent_mesh(*db_, clock_)) {}

  Backend backend() const override { return pg_ ? Backend::postgres : Backend::sqlite; }
  std::string describe() const override { return db_->describe(); }
  bool ready() override { return db_->ready(); }
  void submit(std::function<void()> job) override { db_->submit(std::move(job)); }
  void submit_batched(std::function<void()> call,
                      std::function<void(core::Result<void>)> committed) override {
    db_->submit_batched(std::move(call), std::move(committed));
  }

  AgentMeshStore& agent_mesh() override { return *mesh_; }

  Result<SchemaStatus> schema_status() override {
    Result<SchemaStatus> out = core::Error(core::Errc::internal, "unset");
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      out = schema_status_of(tx);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  // ---- agents ----

  Result<Agent> upsert_agent(const AgentInfo& info) override {
    if (info.id.empty()) return sql_invalid("agent id is empty");
    Agent out;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto a = upsert_agent_tx(tx, info, now());
      if (!a) return a.error();
      out = std::move(a->first);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<RegisterOutcome> register_agent(const AgentRegistration& reg) override {
    if (reg.info.id.empty()) return sql_invalid("agent id is empty");
    RegisterOutcome out;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      out = RegisterOutcome{};  // a retried transaction runs the job again
      std::int64_t t = now();
      std::string token_id;
      if (!reg.token_hash.empty()) {
        auto tok = tx.query(
            "UPDATE registration_tokens SET uses = uses + 1, last_used_at_ms = $2 WHERE "
            "token_hash = $1 AND revoked_at_ms = 0 RETURNING id",
            {reg.token_hash, t});
        if (!tok) return tok.error();
        if (tok->empty()) {
          out.token = TokenCheck::invalid;
          return {};
        }
        out.token = TokenCheck::valid;
        token_id = tok->at(0).s(0);
      }
      auto a = upsert_agent_tx(tx, reg.info, t);
      if (!a) return a.error();
      out.agent = std::move(a->first);
      out.created = a->second;
      if (out.agent.approval == Approval::pending &&
          (out.token == TokenCheck::valid || reg.auto_approve)) {
        std::string actor =
            out.token == TokenCheck::valid ? "registration-token:" + token_id : "auto-approve";
        auto rows = tx.query(std::string("UPDATE agents SET approval = 'approved', "
                                         "approval_actor = $2, approval_changed_at_ms = $3 "
                                         "WHERE id = $1 RETURNING ") +
                                 kSqlAgentCols,
                             {reg.info.id, actor, t});
        if (!rows) return rows.error();
        out.agent = sql_agent_from(rows->at(0));
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<HeartbeatOutcome> heartbeat(const AgentHeartbeat& hb) override {
    Result<HeartbeatOutcome> out = sql_not_found("agent " + hb.agent_id + " is not registered");
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      std::int64_t t = now();
      auto rows = tx.query(
          std::string(
              "UPDATE agents SET last_seen_ms = $2, active_model = CASE WHEN CAST($3 AS TEXT) "
              "= '' THEN active_model ELSE $3 END, telemetry_json = CASE WHEN CAST($4 AS TEXT) "
              "= '' THEN telemetry_json ELSE $4 END, runtime_json = CASE WHEN CAST($5 AS TEXT) "
              "= '' THEN runtime_json ELSE $5 END, sandbox_mode = CASE WHEN CAST($6 AS TEXT) = "
              "'' THEN sandbox_mode ELSE $6 END WHERE id = $1 RETURNING ") +
              kSqlAgentCols,
          {hb.agent_id, t, hb.active_model, hb.telemetry_json, hb.runtime_json, hb.sandbox_mode});
      if (!rows) return rows.error();
      if (rows->empty()) {
        out = sql_not_found("agent " + hb.agent_id + " is not registered");
        return {};
      }
      HeartbeatOutcome o;
      o.agent = sql_agent_from(rows->at(0));
      out = o;
      // Only an approved agent keeps its leases alive: a denied one's run out and are requeued.
      if (o.agent.approval != Approval::approved) return {};
      auto renewed = tx.query(
          "UPDATE subtasks SET lease_expires_at_ms = $2 + timeout_ms + $3 WHERE holder = $1 AND "
          "state = 'leased' RETURNING id",
          {hb.agent_id, t, hb.lease_budget_ms});
      if (!renewed) return renewed.error();
      o.renewed = static_cast<int>(renewed->size());
      out = std::move(o);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<int> append_diagnostics(const std::string& agent_id,
                                 const std::vector<DiagnosticEvent>& events, int keep) override {
    Result<int> out = sql_not_found("agent " + agent_id + " is not registered");
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto known = tx.query("SELECT id FROM agents WHERE id = $1", {agent_id});
      if (!known) return known.error();
      if (known->empty()) {
        out = sql_not_found("agent " + agent_id + " is not registered");
        return {};
      }
      auto last = tx.query(
          "SELECT COALESCE(MAX(seq), 0) FROM agent_diagnostics WHERE agent_id = $1", {agent_id});
      if (!last) return last.error();
      std::int64_t seq = last->at(0).i(0);
      std::int64_t t = now();
      for (const auto& e : events) {
        auto ins = tx.query(
            "INSERT INTO agent_diagnostics (agent_id, seq, event_at_ms, message, source) VALUES "
            "($1, $2, $3, $4, $5)",
            {agent_id, ++seq, e.event_at_ms ? e.event_at_ms : t, e.message, e.source});
        if (!ins) return ins.error();
      }
      auto del = tx.query("DELETE FROM agent_diagnostics WHERE agent_id = $1 AND seq <= $2",
                          {agent_id, seq - std::int64_t{keep}});
      if (!del) return del.error();
      auto count =
          tx.query("SELECT COUNT(*) FROM agent_diagnostics WHERE agent_id = $1", {agent_id});
      if (!count) return count.error();
      out = static_cast<int>(count->at(0).i(0));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<DiagnosticEvent>> list_diagnostics(const std::string& agent_id,
                                                        int limit) override {
    std::vector<DiagnosticEvent> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT seq, event_at_ms, message, source FROM agent_diagnostics WHERE agent_id = $1 "
          "ORDER BY seq DESC" +
              sql_limit(limit),
          {agent_id});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) {
        out.push_back(DiagnosticEvent{row.i(0), row.i(1), row.s(2), row.s(3)});
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  // ---- registration tokens ----

  Result<RegistrationToken> create_registration_token(const RegistrationToken& tok) override {
    if (tok.id.empty() || tok.token_hash.empty()) return sql_invalid("token id or hash is empty");
    RegistrationToken out = tok;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      out.created_at_ms = tok.created_at_ms ? tok.created_at_ms : now();
      auto rows = tx.query(
          "INSERT INTO registration_tokens (id, token_hash, label, created_by, created_at_ms) "
          "VALUES ($1, $2, $3, $4, $5)",
          {tok.id, tok.token_hash, tok.label, tok.created_by, out.created_at_ms});
      if (!rows) return rows.error();
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<RegistrationToken>> list_registration_tokens() override {
    std::vector<RegistrationToken> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(std::string("SELECT ") + kSqlTokenCols +
                               " FROM registration_tokens ORDER BY created_at_ms, id",
                           {});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) out.push_back(sql_token_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<RegistrationToken> revoke_registration_token(const std::string& id) override {
    Result<RegistrationToken> out = sql_not_found("registration token " + id + " does not exist");
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(std::string("UPDATE registration_tokens SET revoked_at_ms = CASE WHEN "
                                       "revoked_at_ms = 0 THEN $2 ELSE revoked_at_ms END WHERE "
                                       "id = $1 RETURNING ") +
                               kSqlTokenCols,
                           {id, now()});
      if (!rows) return rows.error();
      if (!rows->empty()) out = sql_token_from(rows->at(0));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<Agent> get_agent(const std::string& id) override {
    Result<Agent> out = sql_not_found("agent " + id + " is not registered");
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows =
          tx.query(std::string("SELECT ") + kSqlAgentCols + " FROM agents WHERE id = $1", {id});
      if (!rows) return rows.error();
      if (!rows->empty()) out = sql_agent_from(rows->at(0));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<Agent>> list_agents(std::optional<Approval> approval, int limit) override {
    std::vector<Agent> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      std::string sql = std::string("SELECT ") + kSqlAgentCols + " FROM agents";
      std::vector<Value> params;
      if (approval) {
        sql += " WHERE approval = $1";
        params.emplace_back(std::string(approval_name(*approval)));
      }
      sql += " ORDER BY id" + sql_limit(limit);
      auto rows = tx.query(sql, params);
      if (!rows) return rows.error();
      out.clear();  // a retried transaction runs the job again
      for (const auto& row : *rows) out.push_back(sql_agent_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<Agent> set_approval(const std::string& id, Approval approval,
                             const std::string& actor) override {
    Result<Agent> out = sql_not_found("agent " + id + " is not registered");
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(std::string("UPDATE agents SET approval = $2, approval_actor = $3, "
                                       "approval_changed_at_ms = $4 WHERE id = $1 RETURNING ") +
                               kSqlAgentCols,
                           {id, std::string(approval_name(approval)), actor, now()});
      if (!rows) return rows.error();
      if (!rows->empty()) out = sql_agent_from(rows->at(0));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<Agent> set_agent_mode(const std::string& id, const std::string& mode) override {
    Result<Agent> out = sql_not_found("agent " + id + " is not registered");
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(std::string("UPDATE agents SET mode_override = $2 WHERE id = $1 "
                                       "RETURNING ") +
                               kSqlAgentCols,
                           {id, mode});
      if (!rows) return rows.error();
      if (!rows->empty()) out = sql_agent_from(rows->at(0));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<void> touch_agent(const std::string& id, const std::string& active_model) override {
    bool found = false;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "UPDATE agents SET last_seen_ms = $2, active_model = CASE WHEN $3 = '' THEN "
          "active_model ELSE $3 END WHERE id = $1 RETURNING id",
          {id, now(), active_model});
      if (!rows) return rows.error();
      found = !rows->empty();
      return {};
    });
    if (!r) return r.error();
    if (!found) return sql_not_found("agent " + id + " is not registered");
    return {};
  }

  // ---- tasks ----

  Result<CreatedTask> create_task(const NewTask& task) override {
    if (task.id.empty()) return sql_invalid("task id is empty");
    if (task.subtasks.empty()) return sql_invalid("task " + task.id + " has no subtasks");
    std::set<std::string> ids;
    for (const auto& s : task.subtasks) {
      if (s.id.empty()) return sql_invalid("a subtask id is empty");
      if (!ids.insert(s.id).second) return sql_invalid("duplicate subtask id " + s.id);
      if (s.max_attempts < 1) return sql_invalid("subtask " + s.id + ": max_attempts < 1");
    }
    for (const auto& s : task.subtasks) {
      for (const auto& d : s.depends_on) {
        if (d == s.id || !ids.count(d)) {
          return sql_invalid("subtask " + s.id + " depends on " + d +
                             ", which is not another subtask of this task");
        }
      }
    }
    CreatedTask out;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      out = CreatedTask{};  // a retried transaction runs the job again
      std::int64_t t = now();
      auto ins = tx.query(
          "INSERT INTO tasks (id, project_id, submitter, payload_json, priority, state, "
          "subtask_count, created_at_ms) VALUES ($1, $2, $3, $4, $5, 'open', $6, $7) ON "
          "CONFLICT (id) DO NOTHING RETURNING id",
          {task.id, task.project_id, task.submitter, task.payload_json, std::int64_t{task.priority},
           static_cast<std::int64_t>(task.subtasks.size()), t});
      if (!ins) return ins.error();
      if (ins->empty()) {
        auto rows = tx.query("SELECT id FROM subtasks WHERE task_id = $1 ORDER BY idx", {task.id});
        if (!rows) return rows.error();
        out.created = false;
        for (const auto& row : *rows) out.subtask_ids.push_back(row.s(0));
        return {};
      }
      out.created = true;
      if (auto p = join_project_tx(tx, task.project_id); !p) return p.error();
      std::int64_t idx = 0;
      for (const auto& s : task.subtasks) {
        const char* state = s.depends_on.empty() ? "queued" : "held";
        auto sr = tx.query(
            "INSERT INTO subtasks (id, task_id, idx, kind, language, input, payload_json, "
            "project_id, requested_model, priority, timeout_ms, max_attempts, state, "
            "created_at_ms, requires_sandbox) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
            "$11, $12, $13, $14, $15) ON CONFLICT (id) DO NOTHING RETURNING id",
            {s.id, task.id, idx++, s.kind, s.language, s.input, s.payload_json, task.project_id,
             s.requested_model, std::int64_t{s.priority}, s.timeout_ms,
             std::int64_t{s.max_attempts}, std::string(state), t,
             std::int64_t{s.requires_sandbox ? 1 : 0}});
        if (!sr) return sr.error();
        if (sr->empty()) {
          return core::Error(core::Errc::conflict, "subtask_exists",
                             "subtask id " + s.id + " already belongs to another task");
        }
        std::int64_t pos = 0;
        for (const auto& d : s.depends_on) {
          auto dr = tx.query(
              "INSERT INTO subtask_deps (subtask_id, depends_on, task_id, pos) VALUES ($1, $2, "
              "$3, $4) ON CONFLICT DO NOTHING",
              {s.id, d, task.id, pos++});
          if (!dr) return dr.error();
        }
        out.subtask_ids.push_back(s.id);
      }
      nlohmann::json data = {{"taskId", task.id}, {"subtasks", out.subtask_ids}};
      auto ev = append_event_tx(tx, task.id, "task_created", data.dump(), t);
      if (!ev) return ev.error();
      nlohmann::ordered_json chained = {{"subtasks", out.subtask_ids.size()}};
      return chain_tx(
          tx, sql_chain_draft("task_enqueue", task.id, "", task.submitter, chained.dump()), t);
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::optional<Lease>> claim_next(const ClaimRequest& request) override {
    if (request.agent_id.empty()) return sql_invalid("agent id is empty");
    std::optional<Lease> out;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      out.reset();  // a retried transaction runs the job again
      std::int64_t t = now();
      if (request.max_concurrent > 0) {
        if (pg_) {
          // Serialises this agent's claims across coordinators for the count below.
          auto lock = tx.query(
              "SELECT pg_advisory_xact_lock(hashtextextended('edgecoder-agent:' || "
              "CAST($1 AS TEXT), 0))",
              {request.agent_id});
          if (!lock) return lock.error();
        }
        auto held = tx.query("SELECT COUNT(*) FROM subtasks WHERE holder = $1 AND state = 'leased'",
                             {request.agent_id});
        if (!held) return held.error();
        if (held->at(0).i(0) >= request.max_concurrent) return {};
      }
      Result<Rows> rows = Rows{};
      if (!request.active_model.empty()) {
        rows = claim_query(tx, request, t, true);
        if (!rows) return rows.error();
      }
      if (rows->empty()) {
        rows = claim_query(tx, request, t, false);
        if (!rows) return rows.error();
      }
      if (rows->empty()) return {};
      Lease lease;
      lease.subtask = sql_subtask_from(rows->at(0));
      lease.attempt = lease.subtask.attempt;
      lease.expires_at_ms = lease.subtask.lease_expires_at_ms;
      auto deps = tx.query(
          "SELECT d.depends_on, r.ok, r.output, r.subtask_id FROM subtask_deps d LEFT JOIN "
          "subtask_results r ON r.subtask_id = d.depends_on WHERE d.subtask_id = $1 ORDER BY "
          "d.pos, d.depends_on",
          {lease.subtask.id});
      if (!deps) return deps.error();
      for (const auto& d : *deps) {
        lease.subtask.depends_on.push_back(d.s(0));
        lease.dependencies.push_back(DependencyOutput{d.s(0), !d.null(3), d.i(1) != 0, d.s(2)});
      }
      auto served = tx.query("UPDATE projects SET served = served + 1 WHERE id = $1",
                             {lease.subtask.project_id});
      if (!served) return served.error();
      auto seen =
          tx.query("UPDATE agents SET last_claim_ms = $2 WHERE id = $1", {request.agent_id, t});
      if (!seen) return seen.error();
      nlohmann::json data = {{"subtaskId", lease.subtask.id},
                             {"agentId", request.agent_id},
                             {"attempt", lease.attempt}};
      auto ev = append_event_tx(tx, lease.subtask.task_id, "subtask_leased", data.dump(), t);
      if (!ev) return ev.error();
      nlohmann::ordered_json chained = {{"attempt", lease.attempt}};
      auto chain = chain_tx(tx,
                            sql_chain_draft("task_claim", lease.subtask.task_id, lease.subtask.id,
                                            request.agent_id, chained.dump()),
                            t);
      if (!chain) return chain.error();
      out = std::move(lease);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<int> renew_leases(const std::string& agent_id, std::int64_t lease_budget_ms) override {
    int out = 0;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "UPDATE subtasks SET lease_expires_at_ms = $2 + timeout_ms + $3 WHERE holder = $1 AND "
          "state = 'leased' RETURNING id",
          {agent_id, now(), lease_budget_ms});
      if (!rows) return rows.error();
      out = static_cast<int>(rows->size());
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<ExpiredLeases> expire_leases() override {
    ExpiredLeases out;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      out = {};
      std::int64_t t = now();
      auto rows = tx.query(
          "UPDATE subtasks SET state = CASE WHEN attempt - releases >= max_attempts THEN "
          "'failed' ELSE 'queued' END, finished_at_ms = CASE WHEN attempt - releases >= "
          "max_attempts THEN CAST($1 AS BIGINT) ELSE 0 END, holder = '', lease_expires_at_ms = "
          "0, last_error = CASE WHEN attempt - releases >= max_attempts THEN 'lease expired "
          "(max_attempts ' || CAST(max_attempts AS TEXT) || ' reached)' ELSE 'lease expired' "
          "END WHERE state = 'leased' AND lease_expires_at_ms < $1 RETURNING id, task_id, "
          "state, attempt, last_error",
          {t});
      if (!rows) return rows.error();
      std::map<std::string, bool> tasks;  // task id -> some subtask failed
      for (const auto& row : *rows) {
        bool failed = row.s(2) == "failed";
        (failed ? out.failed : out.requeued)++;
        nlohmann::json data = {
            {"subtaskId", row.s(0)}, {"attempt", row.i(3)}, {"reason", row.s(4)}};
        auto ev = append_event_tx(tx, row.s(1), failed ? "subtask_failed" : "subtask_requeued",
                                  data.dump(), t);
        if (!ev) return ev.error();
        tasks[row.s(1)] = tasks[row.s(1)] || failed;
      }
      for (const auto& [task_id, any_failed] : tasks) {
        if (!any_failed) continue;
        auto done = after_terminal(tx, task_id, t);
        if (!done) return done.error();
      }
      // Chain records last: the head row's lock is the last one the transaction takes.
      for (const auto& row : *rows) {
        if (row.s(2) == "failed") continue;
        nlohmann::ordered_json chained = {{"reason", "lease_expired"}, {"attempt", row.i(3)}};
        auto chain = chain_tx(
            tx, sql_chain_draft("task_requeue", row.s(1), row.s(0), chain_actor(), chained.dump()),
            t);
        if (!chain) return chain.error();
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<RecordOutcome> record_result(const ResultReport& report) override {
    Result<RecordOutcome> out = core::Error(core::Errc::internal, "unset");
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      std::int64_t t = now();
      auto rows = tx.query(
          "SELECT task_id, state, holder, attempt FROM subtasks WHERE id = $1" + for_update_,
          {report.subtask_id});
      if (!rows) return rows.error();
      if (rows->empty()) {
        out = sql_not_found("subtask " + report.subtask_id + " does not exist");
        return {};
      }
      const Row& st = rows->at(0);
      std::string task_id = st.s(0);
      std::string state = st.s(1);
      std::string holder = st.s(2);
      std::int64_t attempt = st.i(3);
      const bool attempt_ok = report.attempt == 0 || attempt == report.attempt;
      if (state == "leased" && holder == report.agent_id && attempt_ok) {
        auto ins = tx.query(
            "INSERT INTO subtask_results (subtask_id, task_id, agent_id, attempt, ok, output, "
            "error, duration_ms, created_at_ms, iterations, escalated) VALUES ($1, $2, $3, $4, "
            "$5, $6, $7, $8, $9, $10, $11)",
            {report.subtask_id, task_id, report.agent_id, attempt, std::int64_t{report.ok ? 1 : 0},
             report.output, report.error, report.duration_ms, t, std::int64_t{report.iterations},
             std::int64_t{report.escalated ? 1 : 0}});
        if (!ins) return ins.error();
        auto up = tx.query(
            "UPDATE subtasks SET state = 'completed', holder = '', lease_expires_at_ms = 0, "
            "finished_at_ms = $2 WHERE id = $1",
            {report.subtask_id, t});
        if (!up) return up.error();
        nlohmann::json data = {{"subtaskId", report.subtask_id},
                               {"agentId", report.agent_id},
                               {"attempt", attempt},
                               {"ok", report.ok}};
        auto ev = append_event_tx(tx, task_id, "subtask_result", data.dump(), t);
        if (!ev) return ev.error();
        auto done = after_terminal(tx, task_id, t);
        if (!done) return done.error();
        Earning earning;
        bool earned = false;
        if (report.earn) {
          auto sub =
              tx.query(std::string("SELECT ") + kSqlSubtaskCols + " FROM subtasks WHERE id = $1",
                       {report.subtask_id});
          if (!sub) return sub.error();
          if (!sub->empty() && report.earn(sql_subtask_from(sub->at(0)), earning)) {
            if (earning.entry.tx_id.empty() || earning.entry.account_id.empty()) {
              return core::Error(core::Errc::internal, "an earning without tx_id or account");
            }
            if (earning.entry.task_id.empty()) earning.entry.task_id = task_id;
            if (earning.entry.created_at_ms == 0) earning.entry.created_at_ms = t;
            auto appended = append_ledger_tx(tx, earning.entry);
            if (!appended) return appended.error();
            earned = !appended->duplicate;
          }
        }
        nlohmann::ordered_json chained = {{"ok", report.ok}, {"attempt", attempt}};
        auto chain = chain_tx(tx,
                              sql_chain_draft("task_complete", task_id, report.subtask_id,
                                              report.agent_id, chained.dump()),
                              t);
        if (!chain) return chain.error();
        if (earned) {
          chain = chain_tx(tx,
                           sql_chain_draft("earnings_accrual", task_id, report.subtask_id,
                                           earning.entry.account_id, earning.payload_json),
                           t);
          if (!chain) return chain.error();
        }
        out = RecordOutcome::accepted;
        return {};
      }
      if (state == "completed") {
        auto prev = tx.query(
            "SELECT agent_id, attempt, ok, output, error FROM subtask_results WHERE subtask_id "
            "= $1",
            {report.subtask_id});
        if (!prev) return prev.error();
        if (!prev->empty()) {
          const Row& p = prev->at(0);
          if (p.s(0) == report.agent_id && (report.attempt == 0 || p.i(1) == report.attempt) &&
              (p.i(2) != 0) == report.ok && p.s(3) == report.output && p.s(4) == report.error) {
            out = RecordOutcome::duplicate;
            return {};
          }
        }
      }
      out = core::Error(core::Errc::conflict, "stale_lease",
                        "subtask " + report.subtask_id + " is " + state + " (attempt " +
                            std::to_string(attempt) +
                            (holder.empty() ? std::string() : ", held by " + holder) +
                            "); not accepting a result for attempt " +
                            std::to_string(report.attempt) + " from " + report.agent_id);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<int> promote_ready(const std::string& task_id) override {
    int out = 0;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto n = promote_tx(tx, task_id, now());
      if (!n) return n.error();
      out = *n;
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<TaskStatus> get_task(const std::string& task_id) override {
    Result<TaskStatus> out = sql_not_found("task " + task_id + " does not exist");
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT id, project_id, submitter, payload_json, priority, state, created_at_ms, "
          "completed_at_ms, last_event_id FROM tasks WHERE id = $1",
          {task_id});
      if (!rows) return rows.error();
      if (rows->empty()) return {};
      const Row& t = rows->at(0);
      TaskStatus status;
      status.id = t.s(0);
      status.project_id = t.s(1);
      status.submitter = t.s(2);
      status.payload_json = t.s(3);
      status.priority = static_cast<int>(t.i(4));
      status.state = t.s(5) == "completed"   ? TaskState::completed
                     : t.s(5) == "cancelled" ? TaskState::cancelled
                                             : TaskState::open;
      status.created_at_ms = t.i(6);
      status.completed_at_ms = t.i(7);
      status.last_event_id = t.i(8);
      auto subs = tx.query(std::string("SELECT ") + kSqlSubtaskCols +
                               " FROM subtasks WHERE task_id = $1 ORDER BY idx",
                           {task_id});
      if (!subs) return subs.error();
      std::map<std::string, std::size_t> pos;
      for (const auto& row : *subs) {
        pos[row.s(0)] = status.subtasks.size();
        status.subtasks.push_back(sql_subtask_from(row));
      }
      auto deps = tx.query(
          "SELECT subtask_id, depends_on FROM subtask_deps WHERE task_id = $1 ORDER BY "
          "subtask_id, pos, depends_on",
          {task_id});
      if (!deps) return deps.error();
      for (const auto& d : *deps) {
        if (auto it = pos.find(d.s(0)); it != pos.end()) {
          status.subtasks[it->second].depends_on.push_back(d.s(1));
        }
      }
      out = std::move(status);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<void> release_lease(const ReleaseRequest& req) override {
    Result<void> out;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      out = {};
      auto rows = tx.query(
          "SELECT task_id, state, holder, attempt FROM subtasks WHERE id = $1" + for_update_,
          {req.subtask_id});
      if (!rows) return rows.error();
      if (rows->empty()) {
        out = sql_not_found("subtask " + req.subtask_id + " does not exist");
        return {};
      }
      const Row& st = rows->at(0);
      std::int64_t attempt = st.i(3);
      if (st.s(1) != "leased" || st.s(2) != req.agent_id ||
          (req.attempt != 0 && attempt != req.attempt)) {
        out = core::Error(core::Errc::conflict, "stale_lease",
                          "subtask " + req.subtask_id + " is not leased to " + req.agent_id +
                              " (attempt " + std::to_string(req.attempt) + ")");
        return {};
      }
      std::string reason = req.reason.empty() ? "released by holder" : req.reason;
      auto up = tx.query(
          "UPDATE subtasks SET state = 'queued', holder = '', lease_expires_at_ms = 0, releases "
          "= releases + 1, last_error = $2 WHERE id = $1",
          {req.subtask_id, "released: " + reason});
      if (!up) return up.error();
      nlohmann::json data = {{"subtaskId", req.subtask_id},
                             {"agentId", req.agent_id},
                             {"attempt", attempt},
                             {"reason", reason}};
      const std::int64_t t = now();
      auto ev = append_event_tx(tx, st.s(0), "subtask_released", data.dump(), t);
      if (!ev) return ev.error();
      nlohmann::ordered_json chained = {{"reason", "released"}, {"attempt", attempt}};
      return chain_tx(
          tx,
          sql_chain_draft("task_requeue", st.s(0), req.subtask_id, req.agent_id, chained.dump()),
          t);
    });
    if (!r) return r.error();
    return out;
  }

  Result<CancelOutcome> cancel_task(const std::string& task_id,
                                    const std::string& reason) override {
    Result<CancelOutcome> out = sql_not_found("task " + task_id + " does not exist");
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      std::int64_t t = now();
      auto task = tx.query("SELECT state FROM tasks WHERE id = $1" + for_update_, {task_id});
      if (!task) return task.error();
      if (task->empty()) {
        out = sql_not_found("task " + task_id + " does not exist");
        return {};
      }
      CancelOutcome o;
      if (task->at(0).s(0) != "open") {
        out = o;
        return {};
      }
      auto subs = tx.query(std::string("UPDATE subtasks SET state = 'cancelled', holder = '', "
                                       "lease_expires_at_ms = 0, finished_at_ms = $2, "
                                       "last_error = $3 WHERE task_id = $1 AND state NOT IN ") +
                               kSqlTerminal + " RETURNING id",
                           {task_id, t, "cancelled: " + reason});
      if (!subs) return subs.error();
      o.cancelled = true;
      o.subtasks = static_cast<int>(subs->size());
      auto up = tx.query("UPDATE tasks SET state = 'cancelled', completed_at_ms = $2 WHERE id = $1",
                         {task_id, t});
      if (!up) return up.error();
      nlohmann::json data = {{"taskId", task_id}, {"reason", reason}, {"subtasks", o.subtasks}};
      auto ev = append_event_tx(tx, task_id, "task_cancelled", data.dump(), t);
      if (!ev) return ev.error();
      out = o;
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<SubtaskResult>> list_results(const std::string& task_id) override {
    std::vector<SubtaskResult> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT r.subtask_id, r.task_id, r.agent_id, r.attempt, r.ok, r.output, r.error, "
          "r.duration_ms, r.created_at_ms, r.iterations, r.escalated FROM subtask_results r "
          "JOIN subtasks s ON s.id = "
          "r.subtask_id WHERE r.task_id = $1 ORDER BY s.idx",
          {task_id});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) out.push_back(sql_result_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<QueueCounts> queue_counts(std::int64_t online_since_ms) override {
    QueueCounts out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      out = {};
      auto subs = tx.query("SELECT state, COUNT(*) FROM subtasks GROUP BY state", {});
      if (!subs) return subs.error();
      for (const auto& row : *subs) {
        const std::string& st = row.s(0);
        std::int64_t n = row.i(1);
        if (st == "held") out.held = n;
        if (st == "queued") out.queued = n;
        if (st == "leased") out.leased = n;
        if (st == "completed") out.completed = n;
        if (st == "failed") out.failed = n;
        if (st == "cancelled") out.cancelled = n;
      }
      auto res = tx.query("SELECT COUNT(*) FROM subtask_results", {});
      if (!res) return res.error();
      out.results = res->at(0).i(0);
      auto tasks = tx.query("SELECT state, COUNT(*) FROM tasks GROUP BY state", {});
      if (!tasks) return tasks.error();
      for (const auto& row : *tasks) {
        (row.s(0) == "open" ? out.tasks_open : out.tasks_finished) += row.i(1);
      }
      auto agents = tx.query(
          "SELECT approval, COUNT(*), SUM(CASE WHEN last_seen_ms >= $1 THEN 1 ELSE 0 END) FROM "
          "agents GROUP BY approval",
          {online_since_ms});
      if (!agents) return agents.error();
      for (const auto& row : *agents) {
        auto a = parse_approval(row.s(0)).value_or(Approval::pending);
        std::int64_t n = row.i(1);
        out.agents += n;
        out.agents_online += row.i(2);
        if (a == Approval::approved) out.agents_approved += n;
        if (a == Approval::pending) out.agents_pending += n;
        if (a == Approval::denied) out.agents_denied += n;
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<SubtaskResult> get_result(const std::string& subtask_id) override {
    Result<SubtaskResult> out = sql_not_found("no result for subtask " + subtask_id);
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT subtask_id, task_id, agent_id, attempt, ok, output, error, duration_ms, "
          "created_at_ms, iterations, escalated FROM subtask_results WHERE subtask_id = $1",
          {subtask_id});
      if (!rows) return rows.error();
      if (rows->empty()) return {};
      out = sql_result_from(rows->at(0));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<LeaseKey> get_lease_key(const std::string& subtask_id) override {
    Result<LeaseKey> out = sql_not_found("subtask " + subtask_id + " does not exist");
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT id, state, holder, attempt, lease_key FROM subtasks WHERE id = $1", {subtask_id});
      if (!rows) return rows.error();
      if (rows->empty()) return {};
      const Row& row = rows->at(0);
      LeaseKey k;
      k.subtask_id = row.s(0);
      k.state = parse_subtask_state(row.s(1)).value_or(SubtaskState::queued);
      k.holder = row.s(2);
      k.attempt = static_cast<int>(row.i(3));
      k.key = row.s(4);
      out = std::move(k);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::int64_t> append_event(const std::string& task_id, const std::string& kind,
                                    const std::string& data_json) override {
    if (kind.empty()) return sql_invalid("event kind is empty");
    Result<std::int64_t> out = std::int64_t{0};
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      out = append_event_tx(tx, task_id, kind, data_json, now());
      if (!out && out.error().code != core::Errc::not_found) return out.error();
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<TaskEvent>> list_events(const std::string& task_id, std::int64_t after_id,
                                             int limit) override {
    std::vector<TaskEvent> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT task_id, id, kind, data_json, created_at_ms FROM task_events WHERE task_id = "
          "$1 AND id > $2 ORDER BY id" +
              sql_limit(limit),
          {task_id, after_id});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) {
        out.push_back(TaskEvent{row.s(0), row.i(1), row.s(2), row.s(3), row.i(4)});
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<PruneCounts> prune(std::int64_t older_than_ms) override {
    PruneCounts out;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      const std::string victims =
          "(SELECT id FROM tasks WHERE state IN ('completed', 'cancelled') AND completed_at_ms < "
          "$1)";
      std::vector<Value> params = {older_than_ms};
      auto del = [&](const std::string& sql, std::int64_t& count) -> Result<void> {
        auto rows = tx.query(sql, params);
        if (!rows) return rows.error();
        count = tx.changes();
        return {};
      };
      std::int64_t deps = 0;
      if (auto e = del("DELETE FROM task_events WHERE task_id IN " + victims, out.events); !e)
        return e;
      if (auto e = del("DELETE FROM subtask_results WHERE task_id IN " + victims, out.results); !e)
        return e;
      if (auto e = del("DELETE FROM subtask_deps WHERE task_id IN " + victims, deps); !e) return e;
      if (auto e = del("DELETE FROM subtasks WHERE task_id IN " + victims, out.subtasks); !e)
        return e;
      return del(
          "DELETE FROM tasks WHERE state IN ('completed', 'cancelled') AND completed_at_ms < $1",
          out.tasks);
    });
    if (!r) return r.error();
    return out;
  }

  // ---- blacklist ----

  Result<void> put_blacklist(const BlacklistEntry& e) override {
    if (e.agent_id.empty()) return sql_invalid("agent id is empty");
    return db_->write([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "INSERT INTO blacklist (agent_id, reason_code, reason, reporter_id, record_json, "
          "created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT "
          "(agent_id) DO UPDATE SET reason_code = excluded.reason_code, reason = "
          "excluded.reason, reporter_id = excluded.reporter_id, record_json = "
          "excluded.record_json, created_at_ms = excluded.created_at_ms, expires_at_ms = "
          "excluded.expires_at_ms",
          {e.agent_id, e.reason_code, e.reason, e.reporter_id, e.record_json,
           e.created_at_ms ? e.created_at_ms : now(), e.expires_at_ms});
      if (!rows) return rows.error();
      return {};
    });
  }

  Result<bool> remove_blacklist(const std::string& agent_id) override {
    bool out = false;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto rows =
          tx.query("DELETE FROM blacklist WHERE agent_id = $1 RETURNING agent_id", {agent_id});
      if (!rows) return rows.error();
      out = !rows->empty();
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::optional<BlacklistEntry>> get_blacklist(const std::string& agent_id) override {
    std::optional<BlacklistEntry> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT agent_id, reason_code, reason, reporter_id, record_json, created_at_ms, "
          "expires_at_ms FROM blacklist WHERE agent_id = $1 AND (expires_at_ms = 0 OR "
          "expires_at_ms > $2)",
          {agent_id, now()});
      if (!rows) return rows.error();
      if (!rows->empty()) out = sql_blacklist_from(rows->at(0));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<BlacklistEntry>> list_blacklist() override {
    std::vector<BlacklistEntry> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT agent_id, reason_code, reason, reporter_id, record_json, created_at_ms, "
          "expires_at_ms FROM blacklist WHERE expires_at_ms = 0 OR expires_at_ms > $1 ORDER BY "
          "agent_id",
          {now()});
      if (!rows) return rows.error();
      out.clear();  // a retried transaction runs the job again
      for (const auto& row : *rows) out.push_back(sql_blacklist_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::pair<std::string, std::int64_t>> blacklist_head() override {
    std::pair<std::string, std::int64_t> out{std::string(kBlacklistGenesis), 0};
    auto r = db_->read([&](Tx& tx) -> Result<void> { return blacklist_head_in(tx, out); });
    if (!r) return r.error();
    return out;
  }

  Result<BlacklistEvent> append_blacklist_event(
      const BlacklistEvent& event, const std::optional<BlacklistEntry>& entry) override {
    if (event.agent_id.empty() || event.event_hash.empty()) {
      return sql_invalid("blacklist event without agent or hash");
    }
    Result<BlacklistEvent> out = event;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      std::pair<std::string, std::int64_t> head;
      if (auto h = blacklist_head_in(tx, head); !h) return h;
      if (head.first != event.prev_event_hash) {
        out = core::Error(core::Errc::conflict, "blacklist_chain_moved",
                          "the blacklist chain moved on; build the event on " + head.first);
        return {};
      }
      BlacklistEvent stored = event;
      stored.created_at_ms = event.created_at_ms ? event.created_at_ms : now();
      auto rows = tx.query(
          "INSERT INTO blacklist_events (event_hash, prev_event_hash, agent_id, action, "
          "record_json, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING "
          "RETURNING seq",
          {stored.event_hash, stored.prev_event_hash, stored.agent_id, stored.action,
           stored.record_json, stored.created_at_ms});
      if (!rows) return rows.error();
      if (rows->empty()) {  // another coordinator appended on the same head meanwhile
        out = core::Error(core::Errc::conflict, "blacklist_chain_moved",
                          "the blacklist chain moved on; read the head again");
        return {};
      }
      stored.seq = rows->at(0).i(0);
      Result<Rows> applied =
          entry ? tx.query(
                      "INSERT INTO blacklist (agent_id, reason_code, reason, reporter_id, "
                      "record_json, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, "
                      "$7) ON CONFLICT (agent_id) DO UPDATE SET reason_code = "
                      "excluded.reason_code, reason = excluded.reason, reporter_id = "
                      "excluded.reporter_id, record_json = excluded.record_json, created_at_ms = "
                      "excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms",
                      {entry->agent_id, entry->reason_code, entry->reason, entry->reporter_id,
                       entry->record_json, entry->created_at_ms ? entry->created_at_ms : now(),
                       entry->expires_at_ms})
                : tx.query("DELETE FROM blacklist WHERE agent_id = $1", {event.agent_id});
      if (!applied) return applied.error();
      out = std::move(stored);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<BlacklistEvent>> list_blacklist_events(std::int64_t after_seq,
                                                            int limit) override {
    std::vector<BlacklistEvent> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT seq, event_hash, prev_event_hash, agent_id, action, record_json, created_at_ms "
          "FROM blacklist_events WHERE seq > $1 ORDER BY seq" +
              sql_limit(limit),
          {after_seq});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) {
        out.push_back(
            BlacklistEvent{row.i(0), row.s(1), row.s(2), row.s(3), row.s(4), row.s(5), row.i(6)});
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  // ---- ledger ----

  Result<LedgerAppend> append_ledger(const LedgerEntry& e) override {
    if (e.tx_id.empty()) return sql_invalid("ledger tx_id is empty");
    if (e.account_id.empty()) return sql_invalid("ledger account_id is empty");
    if (e.kind.empty()) return sql_invalid("ledger kind is empty");
    LedgerAppend out;
    LedgerEntry entry = e;
    if (entry.created_at_ms == 0) entry.created_at_ms = now();
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto appended = append_ledger_tx(tx, entry);
      if (!appended) return appended.error();
      out = *appended;
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<LedgerEntry>> recent_ledger(const std::string& account_id,
                                                 int limit) override {
    std::vector<LedgerEntry> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT seq, tx_id, account_id, kind, amount_millicredits, reason, task_id, "
          "created_at_ms FROM credit_ledger WHERE account_id = $1 ORDER BY seq DESC" +
              sql_limit(limit),
          {account_id});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) out.push_back(sql_ledger_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  // ---- ordering chain ----

  void set_chain_signer(ChainSigner signer) override {
    auto shared = std::make_shared<const ChainSigner>(std::move(signer));
    std::lock_guard lock(signer_mu_);
    signer_ = std::move(shared);
  }

  Result<ChainRecord> append_chain(const ChainRecord& draft) override {
    if (draft.event_type.empty()) return sql_invalid("chain event type is empty");
    auto signer = chain_signer();
    if (!signer) return sql_invalid("no chain signer is set");
    ChainRecord out;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto rec = chain_append_tx(tx, *signer, draft, now());
      if (!rec) return rec.error();
      out = std::move(*rec);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::pair<std::int64_t, std::string>> chain_head(
      const std::string& coordinator_id) override {
    std::pair<std::int64_t, std::string> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows =
          tx.query("SELECT sequence, hash FROM ledger_chain_heads WHERE coordinator_id = $1",
                   {coordinator_id});
      if (!rows) return rows.error();
      out = rows->empty() ? std::make_pair(std::int64_t{0}, std::string(kChainGenesis))
                          : std::make_pair(rows->at(0).i(0), rows->at(0).s(1));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<ChainRecord>> list_chain(const std::string& coordinator_id,
                                              std::int64_t after_sequence, int limit) override {
    std::vector<ChainRecord> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(std::string("SELECT ") + kSqlChainCols +
                               " FROM ledger_chain WHERE coordinator_id = $1 AND sequence > $2 "
                               "ORDER BY sequence" +
                               sql_limit(limit),
                           {coordinator_id, after_sequence});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) out.push_back(sql_chain_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<ReserveOutcome> reserve_credits(const LedgerEntry& e) override {
    if (e.tx_id.empty()) return sql_invalid("ledger tx_id is empty");
    if (e.account_id.empty()) return sql_invalid("ledger account_id is empty");
    if (e.amount_millicredits >= 0) return sql_invalid("a reservation's amount must be negative");
    if (e.task_id.empty()) return sql_invalid("a reservation needs its task_id");
    ReserveOutcome out = ReserveOutcome::reserved;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      if (pg_) {
        // Serialises this account's reservations across coordinators for the sum below.
        auto lock = tx.query(
            "SELECT pg_advisory_xact_lock(hashtextextended('edgecoder-credits:' || "
            "CAST($1 AS TEXT), 0))",
            {e.account_id});
        if (!lock) return lock.error();
      }
      auto seen = tx.query("SELECT 1 FROM credit_ledger WHERE tx_id = $1", {e.tx_id});
      if (!seen) return seen.error();
      if (!seen->empty()) {
        out = ReserveOutcome::duplicate;
        return {};
      }
      auto sum = tx.query(
          "SELECT COALESCE(SUM(amount_millicredits), 0), COUNT(*) FROM credit_ledger WHERE "
          "account_id = $1",
          {e.account_id});
      if (!sum) return sum.error();
      if (sum->at(0).i(1) == 0) {
        out = ReserveOutcome::no_history;
        return {};
      }
      if (sum->at(0).i(0) + e.amount_millicredits < 0) {
        out = ReserveOutcome::insufficient;
        return {};
      }
      LedgerEntry held = e;
      if (held.created_at_ms == 0) held.created_at_ms = now();
      auto ins = append_ledger_tx(tx, held);
      if (!ins) return ins.error();
      auto hold = tx.query(
          "INSERT INTO credit_holds (task_id, account_id, amount_millicredits, created_at_ms) "
          "VALUES ($1, $2, $3, $4)",
          {e.task_id, e.account_id, e.amount_millicredits, now()});
      if (!hold) return hold.error();
      out = ReserveOutcome::reserved;
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<CreditSettlement> settle_credit_holds(std::int64_t orphan_before_ms, int limit,
                                               const std::string& only_task) override {
    CreditSettlement out;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      out = CreditSettlement{};
      auto rows = tx.query(
          "SELECT h.task_id, h.account_id, h.amount_millicredits, COALESCE(t.state, ''), "
          "(SELECT COUNT(*) FROM subtasks s WHERE s.task_id = h.task_id AND s.state = 'failed') "
          "FROM credit_holds h LEFT JOIN tasks t ON t.id = h.task_id "
          "WHERE (t.state IN ('completed', 'cancelled') OR (t.id IS NULL AND h.created_at_ms < "
          "$1)) AND ($3 = '' OR h.task_id = $3) ORDER BY h.created_at_ms LIMIT $2",
          {orphan_before_ms, std::int64_t{limit}, only_task});
      if (!rows) return rows.error();
      const std::int64_t t = now();
      for (const auto& row : *rows) {
        const std::string task_id = row.s(0), account = row.s(1), state = row.s(3);
        const std::int64_t held = row.i(2);
        const bool commit = state == "completed" && row.i(4) == 0;
        const std::string reason = commit                 ? "task completed"
                                   : state == "completed" ? "task failed: refunded"
                                   : state == "cancelled" ? "task cancelled: refunded"
                                                          : "task never created: refunded";
        auto release = append_ledger_tx(tx, LedgerEntry{0, "release:" + task_id, account,
                                                        "held_release", -held, reason, task_id, t});
        if (!release) return release.error();
        if (commit) {
          auto spend = append_ledger_tx(tx, LedgerEntry{0, "spend:" + task_id, account, "spend",
                                                        held, "task completed", task_id, t});
          if (!spend) return spend.error();
          ++out.committed;
        } else {
          ++out.refunded;
        }
        auto gone = tx.query("DELETE FROM credit_holds WHERE task_id = $1", {task_id});
        if (!gone) return gone.error();
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::int64_t> balance(const std::string& account_id) override {
    std::int64_t out = 0;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT COALESCE(SUM(amount_millicredits), 0) FROM credit_ledger WHERE account_id = $1",
          {account_id});
      if (!rows) return rows.error();
      out = rows->at(0).i(0);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<LedgerEntry>> list_ledger(const std::string& account_id,
                                               std::int64_t after_seq, int limit) override {
    std::vector<LedgerEntry> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT seq, tx_id, account_id, kind, amount_millicredits, reason, task_id, "
          "created_at_ms FROM credit_ledger WHERE account_id = $1 AND seq > $2 ORDER BY seq" +
              sql_limit(limit),
          {account_id, after_seq});
      if (!rows) return rows.error();
      out.clear();  // a retried transaction runs the job again
      for (const auto& row : *rows) out.push_back(sql_ledger_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  // ---- audit ----

  Result<std::int64_t> append_audit(const AuditRecord& a) override {
    if (a.actor.empty() || a.action.empty()) return sql_invalid("audit actor/action is empty");
    std::int64_t out = 0;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "INSERT INTO control_audit_log (at_ms, actor, action, target, detail_json) VALUES ($1, "
          "$2, $3, $4, $5) RETURNING id",
          {a.at_ms ? a.at_ms : now(), a.actor, a.action, a.target, a.detail_json});
      if (!rows) return rows.error();
      out = rows->at(0).i(0);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<AuditRecord>> recent_audit(const std::string& action,
                                                const std::string& target, int limit) override {
    std::vector<AuditRecord> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT id, at_ms, actor, action, target, detail_json FROM control_audit_log WHERE ($1 "
          "= '' OR action = $1) AND ($2 = '' OR target = $2) ORDER BY id DESC" +
              sql_limit(limit),
          {action, target});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) {
        out.push_back(AuditRecord{row.i(0), row.i(1), row.s(2), row.s(3), row.s(4), row.s(5)});
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<AuditRecord>> list_audit(std::int64_t after_id, int limit) override {
    std::vector<AuditRecord> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT id, at_ms, actor, action, target, detail_json FROM control_audit_log WHERE id "
          "> $1 ORDER BY id" +
              sql_limit(limit),
          {after_id});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) {
        out.push_back(AuditRecord{row.i(0), row.i(1), row.s(2), row.s(3), row.s(4), row.s(5)});
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  // ---- mesh settings ----

  Result<std::optional<MeshSetting>> get_mesh_setting(const std::string& key) override {
    std::optional<MeshSetting> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT key, value, updated_by, updated_at_ms FROM mesh_settings WHERE key = $1", {key});
      if (!rows) return rows.error();
      out.reset();
      if (!rows->empty()) {
        const auto& row = rows->at(0);
        out = MeshSetting{row.s(0), row.s(1), row.s(2), row.i(3)};
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<MeshSetting> put_mesh_setting(const std::string& key, const std::string& value,
                                       const std::string& updated_by) override {
    if (key.empty()) return sql_invalid("mesh setting key is empty");
    MeshSetting out{key, value, updated_by, now()};
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "INSERT INTO mesh_settings (key, value, updated_by, updated_at_ms) VALUES ($1, $2, $3, "
          "$4) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = "
          "excluded.updated_by, updated_at_ms = excluded.updated_at_ms",
          {out.key, out.value, out.updated_by, out.updated_at_ms});
      if (!rows) return rows.error();
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  // ---- orchestration ----

  Result<Orchestration> put_orchestration(const Orchestration& o) override {
    if (o.agent_id.empty() || o.rollout_id.empty() || o.model.empty()) {
      return sql_invalid("orchestration agent, rollout or model is empty");
    }
    Orchestration out = o;
    out.status = "requested";
    out.message.clear();
    out.progress_pct = -1;
    out.requested_at_ms = out.updated_at_ms = now();
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "INSERT INTO agent_orchestration (agent_id, rollout_id, provider, model, status, "
          "message, progress_pct, requested_by, requested_at_ms, updated_at_ms) VALUES ($1, $2, "
          "$3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (agent_id) DO UPDATE SET rollout_id = "
          "excluded.rollout_id, provider = excluded.provider, model = excluded.model, status = "
          "excluded.status, message = excluded.message, progress_pct = excluded.progress_pct, "
          "requested_by = excluded.requested_by, requested_at_ms = excluded.requested_at_ms, "
          "updated_at_ms = excluded.updated_at_ms",
          {out.agent_id, out.rollout_id, out.provider, out.model, out.status, out.message,
           std::int64_t{out.progress_pct}, out.requested_by, out.requested_at_ms,
           out.updated_at_ms});
      if (!rows) return rows.error();
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::optional<Orchestration>> get_orchestration(const std::string& agent_id) override {
    std::optional<Orchestration> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(std::string("SELECT ") + kSqlOrchestrationCols +
                               " FROM agent_orchestration WHERE agent_id = $1",
                           {agent_id});
      if (!rows) return rows.error();
      out.reset();
      if (!rows->empty()) out = sql_orchestration_from(rows->at(0));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<Orchestration>> list_orchestrations(const std::string& rollout_id) override {
    std::vector<Orchestration> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(std::string("SELECT ") + kSqlOrchestrationCols +
                               " FROM agent_orchestration WHERE $1 = '' OR rollout_id = $1 "
                               "ORDER BY agent_id",
                           {rollout_id});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) out.push_back(sql_orchestration_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<Orchestration> report_orchestration(const std::string& agent_id,
                                             const std::string& rollout_id,
                                             const std::string& status, const std::string& message,
                                             int progress_pct) override {
    Result<Orchestration> out =
        sql_not_found("agent " + agent_id + " has no model switch to report on");
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(std::string("SELECT ") + kSqlOrchestrationCols +
                               " FROM agent_orchestration WHERE agent_id = $1" + for_update_,
                           {agent_id});
      if (!rows) return rows.error();
      if (rows->empty()) return {};
      Orchestration o = sql_orchestration_from(rows->at(0));
      if (!rollout_id.empty() && rollout_id != o.rollout_id) {
        out = core::Error(core::Errc::conflict, "orchestration_superseded",
                          "rollout " + rollout_id + " is no longer the current model switch of " +
                              agent_id + " (now " + o.rollout_id + ")");
        return {};
      }
      o.status = status;
      o.message = message;
      o.progress_pct = progress_pct;
      o.updated_at_ms = now();
      auto upd = tx.query(
          "UPDATE agent_orchestration SET status = $2, message = $3, progress_pct = $4, "
          "updated_at_ms = $5 WHERE agent_id = $1",
          {agent_id, o.status, o.message, std::int64_t{o.progress_pct}, o.updated_at_ms});
      if (!upd) return upd.error();
      out = std::move(o);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  // ---- rollouts ----

  Result<std::int64_t> put_rollout(const RolloutRecord& rollout,
                                   const std::vector<RolloutAgentState>& states) override {
    if (rollout.id.empty()) return sql_invalid("rollout id is empty");
    for (const auto& st : states) {
      if (st.rollout_id != rollout.id || st.agent_id.empty()) {
        return sql_invalid("rollout state for another rollout or without an agent");
      }
    }
    const std::int64_t t = now();
    Result<std::int64_t> out = rollout.version + 1;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      out = rollout.version + 1;
      Result<Rows> rows = rollout.version == 0
                              ? tx.query(
                                    "INSERT INTO rollout_policies (rollout_id, policy_json, "
                                    "version, created_at_ms, updated_at_ms) VALUES ($1, $2, 1, "
                                    "$3, $3) ON CONFLICT (rollout_id) DO NOTHING RETURNING version",
                                    {rollout.id, rollout.policy_json, t})
                              : tx.query(
                                    "UPDATE rollout_policies SET policy_json = $2, version = "
                                    "version + 1, updated_at_ms = $4 WHERE rollout_id = $1 AND "
                                    "version = $3 RETURNING version",
                                    {rollout.id, rollout.policy_json, rollout.version, t});
      if (!rows) return rows.error();
      if (rows->empty()) {
        out = core::Error(core::Errc::conflict, "rollout_changed",
                          "rollout " + rollout.id +
                              (rollout.version == 0 ? " exists" : " changed since it was read"));
        return {};
      }
      for (const auto& st : states) {
        auto sr = tx.query(
            "INSERT INTO rollout_agent_states (rollout_id, agent_id, status, target_model, "
            "previous_model, error, rollback, enrolled_at_ms, updated_at_ms) VALUES ($1, $2, $3, "
            "$4, $5, $6, $7, $8, $9) ON CONFLICT (rollout_id, agent_id) DO UPDATE SET status = "
            "excluded.status, target_model = excluded.target_model, previous_model = "
            "excluded.previous_model, error = excluded.error, rollback = excluded.rollback, "
            "updated_at_ms = excluded.updated_at_ms",
            {st.rollout_id, st.agent_id, st.status, st.target_model, st.previous_model, st.error,
             std::int64_t{st.rollback ? 1 : 0}, st.enrolled_at_ms ? st.enrolled_at_ms : t, t});
        if (!sr) return sr.error();
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::optional<RolloutRecord>> get_rollout(const std::string& id) override {
    std::optional<RolloutRecord> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT rollout_id, policy_json, version, created_at_ms, updated_at_ms FROM "
          "rollout_policies WHERE rollout_id = $1",
          {id});
      if (!rows) return rows.error();
      out.reset();
      if (!rows->empty()) {
        const auto& row = rows->at(0);
        out = RolloutRecord{row.s(0), row.s(1), row.i(2), row.i(3), row.i(4)};
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<RolloutRecord>> list_rollouts() override {
    std::vector<RolloutRecord> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT rollout_id, policy_json, version, created_at_ms, updated_at_ms FROM "
          "rollout_policies ORDER BY created_at_ms, rollout_id",
          {});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) {
        out.push_back({row.s(0), row.s(1), row.i(2), row.i(3), row.i(4)});
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::vector<RolloutAgentState>> list_rollout_states(const std::string& id) override {
    std::vector<RolloutAgentState> out;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      auto rows = tx.query(
          "SELECT rollout_id, agent_id, status, target_model, previous_model, error, rollback, "
          "enrolled_at_ms, updated_at_ms FROM rollout_agent_states WHERE rollout_id = $1 ORDER "
          "BY enrolled_at_ms, agent_id",
          {id});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) {
        out.push_back(RolloutAgentState{row.s(0), row.s(1), row.s(2), row.s(3), row.s(4), row.s(5),
                                        row.i(6) != 0, row.i(7), row.i(8)});
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  // ---- signed agent requests ----

  Result<AdmissionOutcome> admit_signed_request(const SignedRequestAdmission& req) override {
    if (req.agent_id.empty() || req.nonce.empty()) return sql_invalid("agent id or nonce is empty");
    AdmissionOutcome out;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      out = AdmissionOutcome{};  // a retried transaction runs the job again
      const std::int64_t t = now();
      // A remembered nonce that has expired may be taken again (its timestamp is out of the
      // skew window by then anyway); an unexpired one is a replay.
      auto rows = tx.query(
          "INSERT INTO agent_nonces (agent_id, nonce, expires_at_ms) VALUES ($1, $2, $3) ON "
          "CONFLICT (agent_id, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms "
          "WHERE agent_nonces.expires_at_ms <= $4 RETURNING expires_at_ms",
          {req.agent_id, req.nonce, std::max(req.nonce_expires_at_ms, t + 1), t});
      if (!rows) return rows.error();
      if (rows->empty()) {
        out.admission = Admission::replay;
        return {};
      }
      if (req.rate_max <= 0 || req.rate_window_ms <= 0) return {};
      auto hit = bump_counter_tx(tx, req.agent_id, "signed_requests", req.rate_window_ms, t);
      if (!hit) return hit.error();
      out.count = hit->count;
      if (hit->count > req.rate_max) {
        out.admission = Admission::rate_limited;
        out.retry_after_ms = hit->window_start_ms + req.rate_window_ms - t;
      }
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<CounterHit> bump_agent_counter(const std::string& agent_id, const std::string& kind,
                                        std::int64_t window_ms) override {
    if (agent_id.empty() || kind.empty() || window_ms <= 0) {
      return sql_invalid("counter needs an agent, a kind and a positive window");
    }
    CounterHit out;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      auto hit = bump_counter_tx(tx, agent_id, kind, window_ms, now());
      if (!hit) return hit.error();
      out = *hit;
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::int64_t> agent_counter(const std::string& agent_id, const std::string& kind,
                                     std::int64_t window_ms) override {
    if (window_ms <= 0) return sql_invalid("counter window must be positive");
    std::int64_t out = 0;
    auto r = db_->read([&](Tx& tx) -> Result<void> {
      const std::int64_t t = now();
      auto rows = tx.query(
          "SELECT hits FROM agent_counters WHERE agent_id = $1 AND kind = $2 AND "
          "window_start_ms = $3",
          {agent_id, kind, t - t % window_ms});
      if (!rows) return rows.error();
      out = rows->empty() ? 0 : rows->at(0).i(0);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  Result<std::int64_t> prune_request_guards() override {
    std::int64_t out = 0;
    auto r = db_->write([&](Tx& tx) -> Result<void> {
      const std::int64_t t = now();
      auto nonces = tx.query("DELETE FROM agent_nonces WHERE expires_at_ms <= $1", {t});
      if (!nonces) return nonces.error();
      out = tx.changes();
      auto counters =
          tx.query("DELETE FROM agent_counters WHERE window_start_ms + window_ms <= $1", {t});
      if (!counters) return counters.error();
      out += tx.changes();
      return {};
    });
    if (!r) return r.error();
    return out;
  }

 private:
  std::int64_t now() const { return clock_(); }

  std::shared_ptr<const ChainSigner> chain_signer() const {
    std::lock_guard lock(signer_mu_);
    return signer_;
  }
  // Who the coordinator's own records (lease expiry) name as actor.
  std::string chain_actor() const {
    auto signer = chain_signer();
    return signer ? signer->coordinator_id : std::string();
  }

  // Appends `draft` to the signer's chain inside `tx`: locks the coordinator's head row (created
  // at GENESIS on first use), so appends of one coordinator queue behind each other until
  // commit; call it last in a transaction so that this lock is the last one taken.
  Result<ChainRecord> chain_append_tx(Tx& tx, const ChainSigner& signer, ChainRecord rec,
                                      std::int64_t t) {
    const std::string lock_head =
        "SELECT sequence, hash FROM ledger_chain_heads WHERE coordinator_id = $1" + for_update_;
    auto head = tx.query(lock_head, {signer.coordinator_id});
    if (!head) return head.error();
    if (head->empty()) {  // the coordinator's first record
      auto init = tx.query(
          "INSERT INTO ledger_chain_heads (coordinator_id, sequence, hash) VALUES ($1, 0, $2) "
          "ON CONFLICT (coordinator_id) DO NOTHING",
          {signer.coordinator_id, std::string(kChainGenesis)});
      if (!init) return init.error();
      head = tx.query(lock_head, {signer.coordinator_id});
      if (!head) return head.error();
      if (head->empty()) return core::Error(core::Errc::internal, "chain head row lost");
    }
    rec.coordinator_id = signer.coordinator_id;
    rec.sequence = head->at(0).i(0) + 1;
    rec.prev_hash = head->at(0).s(1);
    rec.issued_at_ms = t;
    rec.id = sql_uuid();
    rec.hash = chain_record_hash(rec);
    rec.signature = signer.sign(rec.hash);
    if (rec.signature.empty()) return core::Error(core::Errc::internal, "chain signing failed");
    auto ins = tx.query(
        std::string("INSERT INTO ledger_chain (") + kSqlChainCols +
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        {rec.coordinator_id, rec.sequence, rec.id, rec.event_type, rec.task_id, rec.subtask_id,
         rec.actor_id, rec.issued_at_ms, rec.prev_hash, rec.payload_json, rec.hash, rec.signature});
    if (!ins) return ins.error();
    auto up =
        tx.query("UPDATE ledger_chain_heads SET sequence = $2, hash = $3 WHERE coordinator_id = $1",
                 {rec.coordinator_id, rec.sequence, rec.hash});
    if (!up) return up.error();
    return rec;
  }

  // chain_append_tx with the store's signer; nothing without one.
  Result<void> chain_tx(Tx& tx, ChainRecord draft, std::int64_t t) {
    auto signer = chain_signer();
    if (!signer || signer->coordinator_id.empty()) return {};
    auto rec = chain_append_tx(tx, *signer, std::move(draft), t);
    if (!rec) return rec.error();
    return {};
  }

  static Result<LedgerAppend> append_ledger_tx(Tx& tx, const LedgerEntry& e) {
    auto rows = tx.query(
        "INSERT INTO credit_ledger (tx_id, account_id, kind, amount_millicredits, reason, "
        "task_id, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tx_id) DO "
        "NOTHING RETURNING seq",
        {e.tx_id, e.account_id, e.kind, e.amount_millicredits, e.reason, e.task_id,
         e.created_at_ms});
    if (!rows) return rows.error();
    if (!rows->empty()) return LedgerAppend{rows->at(0).i(0), false};
    auto prev = tx.query("SELECT seq FROM credit_ledger WHERE tx_id = $1", {e.tx_id});
    if (!prev) return prev.error();
    if (prev->empty()) return core::Error(core::Errc::internal, "ledger insert lost");
    return LedgerAppend{prev->at(0).i(0), true};
  }

  // One atomic increment of a fixed-window counter (the upsert serialises concurrent callers,
  // across processes on PostgreSQL).
  static Result<CounterHit> bump_counter_tx(Tx& tx, const std::string& agent_id,
                                            const std::string& kind, std::int64_t window_ms,
                                            std::int64_t t) {
    const std::int64_t start = t - t % window_ms;
    auto rows = tx.query(
        "INSERT INTO agent_counters (agent_id, kind, window_start_ms, window_ms, hits, "
        "updated_at_ms) VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (agent_id, kind) DO UPDATE "
        "SET hits = CASE WHEN agent_counters.window_start_ms = excluded.window_start_ms THEN "
        "agent_counters.hits + 1 ELSE 1 END, window_start_ms = excluded.window_start_ms, "
        "window_ms = excluded.window_ms, updated_at_ms = excluded.updated_at_ms RETURNING hits, "
        "window_start_ms",
        {agent_id, kind, start, window_ms, t});
    if (!rows) return rows.error();
    if (rows->empty()) return core::Error(core::Errc::internal, "counter upsert returned nothing");
    return CounterHit{rows->at(0).i(0), rows->at(0).i(1)};
  }

  static Result<void> blacklist_head_in(Tx& tx, std::pair<std::string, std::int64_t>& out) {
    auto rows =
        tx.query("SELECT event_hash, seq FROM blacklist_events ORDER BY seq DESC LIMIT 1", {});
    if (!rows) return rows.error();
    out = rows->empty() ? std::make_pair(std::string(kBlacklistGenesis), std::int64_t{0})
                        : std::make_pair(rows->at(0).s(0), rows->at(0).i(1));
    return {};
  }

  // The claim statement: one UPDATE of the chosen queued subtask (SKIP LOCKED on PostgreSQL,
  // so concurrent claimers take different rows), filtered by the agent's capabilities.
  Result<Rows> claim_query(Tx& tx, const ClaimRequest& req, std::int64_t t, bool by_model) {
    std::vector<Value> params = {req.agent_id, t, req.lease_budget_ms, req.lease_key};
    std::string where = "s.state = 'queued'";
    auto param = [&](Value v) {
      params.push_back(std::move(v));
      return "$" + std::to_string(params.size());
    };
    if (by_model) where += " AND s.requested_model = " + param(req.active_model);
    if (!req.languages.empty()) {
      where += " AND s.language IN (";
      for (std::size_t i = 0; i < req.languages.size(); ++i) {
        where += (i ? ", " : "") + param(req.languages[i]);
      }
      where += ")";
    }
    if (!req.sandboxed) where += " AND s.requires_sandbox = 0";
    if (req.max_timeout_ms > 0) where += " AND s.timeout_ms <= " + param(req.max_timeout_ms);
    // PostgreSQL sorts every eligible row so that SKIP LOCKED can move past a row another claimer
    // holds. SQLite has one writer: it probes each project's next subtask in index order
    // (schema 12) and sorts only those, so a claim costs the same with 20 or 20,000 queued.
    std::string pick =
        pg_ ? "SELECT s.id FROM subtasks s JOIN projects p ON p.id = s.project_id WHERE " + where +
                  " ORDER BY p.served, s.priority DESC, s.created_at_ms, s.idx LIMIT 1 FOR UPDATE "
                  "OF s SKIP LOCKED"
            : "SELECT c.id FROM projects p JOIN subtasks c ON c.id = (SELECT s.id FROM subtasks "
              "s WHERE s.project_id = p.id AND " +
                  where +
                  " ORDER BY s.priority DESC, s.created_at_ms, s.idx LIMIT 1) ORDER BY p.served, "
                  "c.priority DESC, c.created_at_ms, c.idx LIMIT 1";
    return tx.query(
        "UPDATE subtasks SET state = 'leased', holder = $1, attempt = attempt + 1, "
        "leased_at_ms = $2, lease_expires_at_ms = $2 + timeout_ms + $3, lease_key = $4 WHERE "
        "state = "
        "'queued' AND id = (" +
            pick + ") RETURNING " + kSqlSubtaskCols,
        params);
  }

  // Inserts or refreshes the agent. Returns it and whether it was new.
  Result<std::pair<Agent, bool>> upsert_agent_tx(Tx& tx, const AgentInfo& info, std::int64_t t) {
    auto rows = tx.query(
        std::string(
            "INSERT INTO agents (id, os, version, mode, client_type, max_concurrent_tasks, "
            "sandbox_mode, active_model, public_key, metadata_json, registered_at_ms, "
            "last_seen_ms, languages, telemetry_json, runtime_json) VALUES ($1, $2, $3, $4, $5, "
            "$6, $7, $8, $9, $10, $11, $11, $12, CASE WHEN CAST($13 AS TEXT) = '' THEN '{}' "
            "ELSE $13 END, CASE WHEN CAST($14 AS TEXT) = '' THEN '{}' ELSE $14 END) ON CONFLICT "
            "(id) DO UPDATE SET os = excluded.os, version = excluded.version, mode = "
            "excluded.mode, client_type = excluded.client_type, max_concurrent_tasks = "
            "excluded.max_concurrent_tasks, sandbox_mode = excluded.sandbox_mode, active_model "
            "= CASE WHEN excluded.active_model = '' THEN agents.active_model ELSE "
            "excluded.active_model END, public_key = excluded.public_key, metadata_json = "
            "excluded.metadata_json, last_seen_ms = excluded.last_seen_ms, languages = "
            "excluded.languages, telemetry_json = CASE WHEN CAST($13 AS TEXT) = '' THEN "
            "agents.telemetry_json ELSE excluded.telemetry_json END, runtime_json = CASE WHEN "
            "CAST($14 AS TEXT) = '' THEN agents.runtime_json ELSE excluded.runtime_json END "
            "RETURNING ") +
            kSqlAgentCols,
        {info.id, info.os, info.version, info.mode, info.client_type,
         std::int64_t{info.max_concurrent_tasks}, info.sandbox_mode, info.active_model,
         info.public_key, info.metadata_json, t, sql_join(info.languages), info.telemetry_json,
         info.runtime_json});
    if (!rows) return rows.error();
    Agent a = sql_agent_from(rows->at(0));
    bool created = a.registered_at_ms == t && a.approval_changed_at_ms == 0;
    return std::make_pair(std::move(a), created);
  }

  // Fair share: a project that gets new work starts at the served count of the least-served
  // other project that has work, so a newcomer (or a returning project) cannot starve the rest.
  Result<void> join_project_tx(Tx& tx, const std::string& project_id) {
    auto ins =
        tx.query("INSERT INTO projects (id, served) VALUES ($1, 0) ON CONFLICT (id) DO NOTHING",
                 {project_id});
    if (!ins) return ins.error();
    const std::string floor =
        "(SELECT MIN(p2.served) FROM projects p2 WHERE p2.id <> $1 AND EXISTS (SELECT 1 FROM "
        "subtasks s WHERE s.project_id = p2.id AND s.state IN ('queued', 'leased', 'held')))";
    auto up =
        tx.query("UPDATE projects SET served = " + floor + " WHERE id = $1 AND served < " + floor,
                 {project_id});
    if (!up) return up.error();
    return {};
  }

  // Takes the task row lock (PostgreSQL), so completion checks that follow see every
  // concurrently committed subtask change.
  Result<std::int64_t> append_event_tx(Tx& tx, const std::string& task_id, const std::string& kind,
                                       const std::string& data, std::int64_t t) {
    auto rows = tx.query(
        "UPDATE tasks SET last_event_id = last_event_id + 1 WHERE id = $1 RETURNING "
        "last_event_id",
        {task_id});
    if (!rows) return rows.error();
    if (rows->empty()) return sql_not_found("task " + task_id + " does not exist");
    std::int64_t id = rows->at(0).i(0);
    auto ins = tx.query(
        "INSERT INTO task_events (task_id, id, kind, data_json, created_at_ms) VALUES ($1, $2, "
        "$3, $4, $5)",
        {task_id, id, kind, data, t});
    if (!ins) return ins.error();
    return id;
  }

  Result<int> promote_tx(Tx& tx, const std::string& task_id, std::int64_t t) {
    auto rows = tx.query(
        std::string("UPDATE subtasks SET state = 'queued' WHERE task_id = $1 AND state = 'held' "
                    "AND NOT EXISTS (SELECT 1 FROM subtask_deps d JOIN subtasks p ON p.id = "
                    "d.depends_on WHERE d.subtask_id = subtasks.id AND p.state NOT IN ") +
            kSqlTerminal + ") RETURNING id",
        {task_id});
    if (!rows) return rows.error();
    for (const auto& row : *rows) {
      nlohmann::json data = {{"subtaskId", row.s(0)}};
      auto ev = append_event_tx(tx, task_id, "subtask_queued", data.dump(), t);
      if (!ev) return ev.error();
    }
    return static_cast<int>(rows->size());
  }

  // After a subtask of the task became terminal: release dependants, complete the task.
  Result<void> after_terminal(Tx& tx, const std::string& task_id, std::int64_t t) {
    auto promoted = promote_tx(tx, task_id, t);
    if (!promoted) return promoted.error();
    auto rows = tx.query(
        std::string("UPDATE tasks SET state = 'completed', completed_at_ms = $2 WHERE id = $1 "
                    "AND state = 'open' AND NOT EXISTS (SELECT 1 FROM subtasks WHERE task_id = "
                    "$1 AND state NOT IN ") +
            kSqlTerminal + ") RETURNING id",
        {task_id, t});
    if (!rows) return rows.error();
    if (!rows->empty()) {
      nlohmann::json data = {{"taskId", task_id}};
      auto ev = append_event_tx(tx, task_id, "task_completed", data.dump(), t);
      if (!ev) return ev.error();
    }
    return {};
  }

  // Constants after construction.
  const std::unique_ptr<Db> db_;
  const std::function<std::int64_t()> clock_;
  const bool pg_;
  const std::string for_update_;  // " FOR UPDATE" on PostgreSQL, "" on SQLite
  mutable std::mutex signer_mu_;
  std::shared_ptr<const ChainSigner> signer_;  // guarded by signer_mu_
  const std::unique_ptr<AgentMeshStore> mesh_;
};

std::unique_ptr<Store> make_sql_store(std::unique_ptr<Db> db, std::function<std::int64_t()> clock) {
  return std::make_unique<SqlStore>(std::move(db), std::move(clock));
}

}  // namespace edgecoder::store::sql
