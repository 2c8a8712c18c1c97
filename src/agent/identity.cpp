#include "agent/identity.h"

#include <system_error>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "core/log.h"

namespace edgecoder::agent {

namespace crypto = core::crypto;

std::string Identity::public_key_pem() const {
  return crypto::ed25519_public_key_pem(ed25519.public_key);
}

std::string Identity::x25519_public_key() const { return crypto::base64_encode(x25519.public_key); }

std::string Identity::fingerprint() const {
  return crypto::sha256_hex(ed25519.public_key).substr(0, 16);
}

namespace {

core::Result<void> save(const std::filesystem::path& file, const Identity& id) {
  nlohmann::json j = {
      {"agentId", id.agent_id},
      {"ed25519Seed", crypto::base64_encode(id.ed25519.secret_key.substr(0, 32))},
      {"ed25519PublicKey", crypto::base64_encode(id.ed25519.public_key)},
      {"x25519SecretKey", crypto::base64_encode(id.x25519.secret_key)},
      {"x25519PublicKey", crypto::base64_encode(id.x25519.public_key)},
  };
  return core::fs::write_private_file(file, j.dump(2) + "\n");
}

core::Result<Identity> parse(const std::filesystem::path& file, const std::string& text) {
  auto bad = [&](std::string_view what) {
    return core::make_error(core::Errc::invalid_argument,
                            file.string() + ": " + std::string(what) +
                                " (move the file away to create a new identity)");
  };
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return bad("not a JSON object");
  Identity id;
  id.agent_id = j.value("agentId", "");
  if (id.agent_id.empty()) return bad("agentId missing");
  auto seed = crypto::base64_decode(j.value("ed25519Seed", ""));
  if (!seed) return bad("ed25519Seed unreadable");
  auto ed = crypto::ed25519_from_seed(*seed);
  if (!ed) return bad("ed25519Seed is not 32 bytes");
  id.ed25519 = std::move(*ed);
  auto xs = crypto::base64_decode(j.value("x25519SecretKey", ""));
  if (!xs) return bad("x25519SecretKey unreadable");
  auto x = crypto::x25519_from_secret(*xs);
  if (!x) return bad("x25519SecretKey is not 32 bytes");
  id.x25519 = std::move(*x);
  return id;
}

}  // namespace

core::Result<Identity> load_or_create_identity(const std::filesystem::path& file,
                                               std::string_view configured_id) {
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) {
    auto text = core::fs::read_file(file);
    if (!text) return text.error();
    auto id = parse(file, *text);
    if (!id) return id.error();
    std::filesystem::permissions(
        file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
    if (!configured_id.empty() && configured_id != id->agent_id) {
      core::log::warn("agent", "agent_id_changed",
                      {{"from", id->agent_id}, {"to", configured_id}, {"keys", "kept"}});
      id->agent_id = std::string(configured_id);
      if (auto r = save(file, *id); !r) return r.error();
    }
    return id;
  }
  Identity id;
  id.agent_id =
      configured_id.empty() ? "agent-" + crypto::random_hex(8) : std::string(configured_id);
  id.ed25519 = crypto::ed25519_generate();
  id.x25519 = crypto::x25519_generate();
  if (auto r = save(file, id); !r) return r.error();
  core::log::info("agent", "identity_created",
                  {{"agent_id", id.agent_id}, {"file", file.string()}});
  return id;
}

}  // namespace edgecoder::agent
