// AgentOutbox: the agent's local, durable queue of finished subtask results that could not be
// delivered to the coordinator (it was down or unreachable). One small SQLite file in the agent's
// data directory (mode 0600), separate from the coordinator's store. The agent adds a result when
// delivery fails and removes it once the coordinator has answered for it; bodies are opaque text
// (the /result JSON), so this store knows nothing about the wire format.
// Ownership: an AgentOutbox owns its SQLite connection.
// Thread-safety: every method may be called from any thread (one connection behind a mutex);
// each call is a short local transaction.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace edgecoder::store {

struct OutboxEntry {
  std::int64_t id = 0;
  std::string subtask_id;
  std::string body;
  std::int64_t created_at_ms = 0;
};

class AgentOutbox {
 public:
  // Opens (creating it and its table if missing) the outbox file.
  static core::Result<std::unique_ptr<AgentOutbox>> open(const std::filesystem::path& file);
  ~AgentOutbox();
  AgentOutbox(const AgentOutbox&) = delete;
  AgentOutbox& operator=(const AgentOutbox&) = delete;

  // Keeps one undelivered result; a second one for the same subtask replaces the first.
  core::Result<void> add(std::string_view subtask_id, std::string_view body);
  // The oldest `limit` entries, oldest first.
  core::Result<std::vector<OutboxEntry>> list(std::size_t limit);
  core::Result<void> remove(std::int64_t id);
  core::Result<std::int64_t> size();

 private:
  struct Impl;
  explicit AgentOutbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgecoder::store
