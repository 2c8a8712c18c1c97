// Wire types of the coordinator routes: defaults, validation errors naming the field, the new
// fields (sandboxMode, languages, attempt), dependsOn by id or index, and the pulled subtask.
#include <gtest/gtest.h>

#include "api/coordinator.h"

namespace edgecoder::api {
namespace {

TEST(ApiCoordinator, RegisterDefaultsAndNewFields) {
  auto r = parse_register({{"agentId", "w-1"}});
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->mode, "swarm-only");
  EXPECT_EQ(r->client_type, "edgecoder-native");
  EXPECT_EQ(r->max_concurrent_tasks, 1);
  EXPECT_EQ(r->sandbox_mode, "none");
  EXPECT_TRUE(r->languages.empty());
  auto full = parse_register({{"agentId", "w-1"},
                              {"sandboxMode", "bwrap"},
                              {"languages", {"python", "rust"}},
                              {"maxConcurrentTasks", 4},
                              {"powerTelemetry", {{"batteryPct", 50}}},
                              {"unknownField", 1}});
  ASSERT_TRUE(full) << full.error().detail;
  EXPECT_EQ(full->sandbox_mode, "bwrap");
  EXPECT_EQ(full->languages, (std::vector<std::string>{"python", "rust"}));
  EXPECT_EQ(full->max_concurrent_tasks, 4);
  ASSERT_TRUE(full->power_telemetry);
  for (auto mode : {"bwrap", "process", "docker", "vm", "none"}) {
    EXPECT_TRUE(parse_register({{"agentId", "a"}, {"sandboxMode", mode}})) << mode;
  }
}

TEST(ApiCoordinator, RegisterErrorsNameTheField) {
  auto expect_field = [](const nlohmann::json& body, const std::string& field) {
    auto r = parse_register(body);
    ASSERT_FALSE(r) << body.dump();
    EXPECT_EQ(r.error().code, core::Errc::invalid_argument);
    EXPECT_EQ(r.error().wire(), "invalid_request");
    EXPECT_NE(r.error().detail.find(field), std::string::npos) << r.error().detail;
  };
  expect_field(nlohmann::json::object(), "agentId");
  expect_field({{"agentId", 5}}, "agentId");
  expect_field({{"agentId", "a b"}}, "agentId");
  expect_field({{"agentId", "a"}, {"sandboxMode", "chroot"}}, "sandboxMode");
  expect_field({{"agentId", "a"}, {"maxConcurrentTasks", 65}}, "maxConcurrentTasks");
  expect_field({{"agentId", "a"}, {"maxConcurrentTasks", 1.5}}, "maxConcurrentTasks");
  expect_field({{"agentId", "a"}, {"languages", {"py thon"}}}, "languages");
  expect_field({{"agentId", "a"}, {"powerTelemetry", "x"}}, "powerTelemetry");
  EXPECT_FALSE(parse_register(nlohmann::json::array()));
}

TEST(ApiCoordinator, ResultAttemptIsOptional) {
  auto r = parse_result(
      {{"subtaskId", "s"}, {"agentId", "a"}, {"ok", true}, {"output", "x"}, {"durationMs", 12.7}});
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->attempt, 0);
  EXPECT_EQ(r->duration_ms, 12);
  auto with = parse_result({{"subtaskId", "s"}, {"agentId", "a"}, {"ok", false}, {"attempt", 3}});
  ASSERT_TRUE(with);
  EXPECT_EQ(with->attempt, 3);
  EXPECT_FALSE(parse_result({{"subtaskId", "s"}, {"agentId", "a"}}));  // ok is required
  EXPECT_FALSE(parse_result({{"subtaskId", "s"}, {"agentId", "a"}, {"ok", true}, {"attempt", 0}}));
  // A sealed result: ok and the rest are inside encryptedPayload (api/envelope.h).
  auto sealed = parse_result({{"subtaskId", "s"}, {"agentId", "a"}, {"encryptedPayload", "zz"}});
  ASSERT_TRUE(sealed) << sealed.error().detail;
  EXPECT_TRUE(sealed->encrypted);
  auto reported = parse_result(
      {{"subtaskId", "s"}, {"agentId", "a"}, {"ok", true}, {"iterations", 2}, {"escalated", true}});
  ASSERT_TRUE(reported);
  EXPECT_FALSE(reported->encrypted);
  EXPECT_EQ(reported->iterations, 2);
  EXPECT_TRUE(reported->escalated);
  EXPECT_FALSE(
      parse_result({{"subtaskId", "s"}, {"agentId", "a"}, {"ok", true}, {"iterations", -1}}));
  EXPECT_FALSE(
      parse_result({{"subtaskId", "s"}, {"agentId", "a"}, {"ok", true}, {"escalated", 1}}));
}

TEST(ApiCoordinator, TasksAcceptPromptOrInputAndDependsOnByIdOrIndex) {
  auto r = parse_tasks({{"projectId", "ide-requests"},
                        {"priority", 60},
                        {"subtasks",
                         {{{"prompt", "first"}, {"language", "javascript"}},
                          {{"id", "b"}, {"input", "second"}, {"dependsOn", {0}}},
                          {{"input", "third"}, {"dependsOn", {"b", 1}}}}}});
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->options.priority, 60);
  EXPECT_EQ(r->options.project_id, "ide-requests");
  ASSERT_EQ(r->subtasks.size(), 3u);
  EXPECT_EQ(r->subtasks[0].input, "first");
  EXPECT_EQ(r->subtasks[0].language, "javascript");
  EXPECT_EQ(r->subtasks[1].language, "python");
  EXPECT_EQ(std::get<std::int64_t>(r->subtasks[1].depends_on[0]), 0);
  EXPECT_EQ(std::get<std::string>(r->subtasks[2].depends_on[0]), "b");
  EXPECT_FALSE(parse_tasks({{"subtasks", nlohmann::json::array()}}));
  EXPECT_FALSE(parse_tasks({{"subtasks", {{{"language", "python"}}}}}));
  EXPECT_FALSE(parse_tasks({{"subtasks", {{{"input", "x"}, {"dependsOn", {-1}}}}}}));
  EXPECT_FALSE(parse_tasks({{"subtasks", {{{"input", "x"}, {"timeoutMs", 10}}}}}));
  auto bad = parse_tasks({{"subtasks", {{{"input", "x"}}, {{"input", "y"}, {"kind", "z"}}}}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().detail.find("subtasks[1].kind"), std::string::npos);
}

TEST(ApiCoordinator, SubmitValidatesSnapshotRef) {
  EXPECT_TRUE(parse_submit({{"prompt", "p"}, {"snapshotRef", std::string(40, 'A')}}));
  EXPECT_TRUE(parse_submit({{"prompt", "p"}, {"snapshotRef", "https://example.org/x.tgz"}}));
  EXPECT_TRUE(parse_submit({{"prompt", "p"}}));
  EXPECT_FALSE(parse_submit({{"prompt", "p"}, {"snapshotRef", std::string(39, 'a')}}));
  EXPECT_FALSE(parse_submit({{"prompt", "p"}, {"snapshotRef", "http://example.org"}}));
  EXPECT_FALSE(parse_submit({{"prompt", "p"}, {"snapshotRef", "debug"}}));
  EXPECT_FALSE(parse_submit({{"prompt", ""}}));
  EXPECT_FALSE(parse_submit({{"prompt", "p"}, {"resourceClass", "tpu"}}));
}

TEST(ApiCoordinator, WireSubtaskRoundTripAndLeaseFields) {
  WireSubtask s;
  s.id = "s1";
  s.task_id = "t1";
  s.input = "print(1)";
  s.project_meta.project_id = "p";
  s.project_meta.tenant_id = "tenant";
  s.depends_on = {"s0"};
  s.subtask_index = 1;
  auto j = to_json(s);
  EXPECT_FALSE(j.contains("attempt"));
  EXPECT_EQ(j["projectMeta"].value("tenantId", ""), "tenant");
  auto back = wire_subtask_from_json(j);
  EXPECT_EQ(back.id, "s1");
  EXPECT_EQ(back.project_meta.project_id, "p");
  EXPECT_EQ(back.depends_on, std::vector<std::string>{"s0"});
  EXPECT_EQ(back.attempt, 0);
  s.attempt = 2;
  s.lease_expires_at_ms = 99;
  j = to_json(s);
  EXPECT_EQ(j.value("attempt", 0), 2);
  EXPECT_EQ(j.value("leaseExpiresAtMs", 0), 99);
  back = wire_subtask_from_json(j);
  EXPECT_EQ(back.attempt, 2);
  EXPECT_EQ(back.lease_expires_at_ms, 99);
}

TEST(ApiCoordinator, DecomposeResponse) {
  auto ok =
      parse_decompose_response({{"subtasks",
                                 {{{"taskId", "t"}, {"input", "a"}, {"timeoutMs", 6000}},
                                  {{"input", "b"}, {"dependsOn", {0}}, {"subtaskIndex", 1}}}}});
  ASSERT_TRUE(ok) << ok.error().detail;
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[0].timeout_ms, 6000);
  EXPECT_EQ((*ok)[1].subtask_index, 1);
  EXPECT_FALSE(parse_decompose_response({{"subtasks", nlohmann::json::array()}}));
  EXPECT_FALSE(parse_decompose_response(nlohmann::json("text")));
}

}  // namespace
}  // namespace edgecoder::api
