#include "coordinator/envelopes.h"

#include "api/envelope.h"
#include "core/crypto.h"

namespace edgecoder::coordinator {

namespace {

namespace crypto = core::crypto;
using json = nlohmann::json;

// What ClaimRequest::lease_key holds: {"v":1,"ephemeralSecret":b64,"agentPublicKey":b64}.
struct LeaseMaterial {
  std::string ephemeral_secret;
  std::string agent_public;
};

core::Result<LeaseMaterial> envelopes_decode(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("v", 0) != 1 || !j.contains("ephemeralSecret") ||
      !j["ephemeralSecret"].is_string() || !j.contains("agentPublicKey") ||
      !j["agentPublicKey"].is_string()) {
    return core::make_error(core::Errc::internal, "stored lease key material is unreadable");
  }
  auto secret = crypto::base64_decode(j["ephemeralSecret"].get<std::string>());
  auto peer = crypto::base64_decode(j["agentPublicKey"].get<std::string>());
  if (!secret || !peer) {
    return core::make_error(core::Errc::internal, "stored lease key material is unreadable");
  }
  return LeaseMaterial{std::move(*secret), std::move(*peer)};
}

std::string_view envelopes_state(store::SubtaskState s) { return store::subtask_state_name(s); }

}  // namespace

std::string agent_x25519_key(const store::Agent& agent) {
  auto meta = json::parse(agent.info.metadata_json, nullptr, false);
  if (!meta.is_object()) return "";
  auto it = meta.find("x25519PublicKey");
  if (it == meta.end() || !it->is_string()) return "";
  auto raw = crypto::base64_decode(it->get<std::string>());
  return raw && raw->size() == 32 ? *raw : std::string();
}

std::string new_lease_key(std::string_view agent_public) {
  const auto eph = crypto::x25519_generate();
  json j = {{"v", 1},
            {"ephemeralSecret", crypto::base64_encode(eph.secret_key)},
            {"agentPublicKey", crypto::base64_encode(agent_public)}};
  return j.dump();
}

core::Result<json> seal_for_lease(const api::WireSubtask& wire, std::string_view lease_key) {
  auto material = envelopes_decode(lease_key);
  if (!material) return material.error();
  return api::seal_task(wire, material->ephemeral_secret, material->agent_public);
}

core::Result<json> open_leased_result(const store::LeaseKey& lease,
                                      const api::ResultRequest& claimed, const json& body) {
  const bool attempt_ok = claimed.attempt == 0 || claimed.attempt == lease.attempt;
  const bool holder =
      lease.state == store::SubtaskState::leased && lease.holder == claimed.agent_id && attempt_ok;
  // A completed subtask keeps its last lease's key: a repeat of the accepted result opens and
  // is then recognised as a duplicate by the store; anyone else's result does not open.
  const bool finished = lease.state == store::SubtaskState::completed && attempt_ok;
  const auto stale = [&] {
    return core::Error(core::Errc::conflict, "stale_lease",
                       "subtask " + lease.subtask_id + " is " +
                           std::string(envelopes_state(lease.state)) + " (attempt " +
                           std::to_string(lease.attempt) +
                           (lease.holder.empty() ? std::string() : ", held by " + lease.holder) +
                           "); not accepting a result for attempt " +
                           std::to_string(claimed.attempt) + " from " + claimed.agent_id);
  };
  if (!holder && !finished) return stale();
  if (lease.key.empty()) {
    return core::Error(
        core::Errc::invalid_argument, std::string(api::kEnvelopeDecryptFailed),
        "subtask " + lease.subtask_id + " was leased in clear: send its result in clear");
  }
  auto material = envelopes_decode(lease.key);
  if (!material) return material.error();
  auto key =
      api::envelope_key(material->ephemeral_secret, material->agent_public, lease.subtask_id);
  if (!key) return key.error();
  auto opened = api::open_result(body, *key);
  if (!opened && finished && opened.error().wire() == api::kEnvelopeDecryptFailed) return stale();
  return opened;
}

}  // namespace edgecoder::coordinator
