// The agent's identity file and its result outbox, in process: keys are created once (0600) and
// read back unchanged; AGENT_ID renames but keeps the keys; a damaged file is an error; the
// outbox keeps results across a reopen, replaces a second result for the same subtask, and
// forgets removed ones.
#include <sys/stat.h>

#include <fstream>

#include <gtest/gtest.h>

#include "agent/identity.h"
#include "core/crypto.h"
#include "store/agent_outbox.h"
#include "support/child_process.h"

namespace edgecoder {
namespace {

TEST(AgentIdentity, CreatedOnceAndReadBack) {
  testing::TempDir dir;
  auto file = dir.path() / "agent-identity.json";
  auto first = agent::load_or_create_identity(file, "");
  ASSERT_TRUE(first) << first.error().detail;
  EXPECT_EQ(first->agent_id.rfind("agent-", 0), 0u);
  EXPECT_EQ(first->ed25519.public_key.size(), 32u);
  EXPECT_EQ(first->x25519.public_key.size(), 32u);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto again = agent::load_or_create_identity(file, "");
  ASSERT_TRUE(again) << again.error().detail;
  EXPECT_EQ(again->agent_id, first->agent_id);
  EXPECT_EQ(again->ed25519.public_key, first->ed25519.public_key);
  EXPECT_EQ(again->x25519.public_key, first->x25519.public_key);
  EXPECT_EQ(again->public_key_pem(), first->public_key_pem());
  // The stored key signs and the public key verifies.
  auto sig = core::crypto::ed25519_sign("hello", again->ed25519.secret_key);
  ASSERT_TRUE(sig);
  EXPECT_TRUE(core::crypto::ed25519_verify("hello", *sig, first->ed25519.public_key));

  auto renamed = agent::load_or_create_identity(file, "worker-01");
  ASSERT_TRUE(renamed);
  EXPECT_EQ(renamed->agent_id, "worker-01");
  EXPECT_EQ(renamed->ed25519.public_key, first->ed25519.public_key);
  EXPECT_EQ(agent::load_or_create_identity(file, "")->agent_id, "worker-01");
}

TEST(AgentIdentity, DamagedFileIsAnError) {
  testing::TempDir dir;
  auto file = dir.path() / "agent-identity.json";
  std::ofstream(file) << "{\"agentId\":\"x\",\"ed25519Seed\":\"AAAA\"}";
  auto id = agent::load_or_create_identity(file, "");
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().detail.find("agent-identity.json"), std::string::npos);
}

TEST(AgentOutbox, KeepsResultsAcrossReopen) {
  testing::TempDir dir;
  auto file = dir.path() / "agent-outbox.db";
  {
    auto box = store::AgentOutbox::open(file);
    ASSERT_TRUE(box) << box.error().detail;
    ASSERT_TRUE((*box)->add("s1", "{\"n\":1}"));
    ASSERT_TRUE((*box)->add("s2", "{\"n\":2}"));
    ASSERT_TRUE((*box)->add("s1", "{\"n\":3}"));
    EXPECT_EQ(*(*box)->size(), 2);
  }
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto box = store::AgentOutbox::open(file);
  ASSERT_TRUE(box);
  auto entries = (*box)->list(10);
  ASSERT_TRUE(entries);
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].subtask_id, "s1");
  EXPECT_EQ((*entries)[0].body, "{\"n\":3}");
  EXPECT_EQ((*entries)[1].subtask_id, "s2");
  ASSERT_TRUE((*box)->remove((*entries)[0].id));
  EXPECT_EQ(*(*box)->size(), 1);
  EXPECT_EQ((*box)->list(10)->front().subtask_id, "s2");
}

}  // namespace
}  // namespace edgecoder
