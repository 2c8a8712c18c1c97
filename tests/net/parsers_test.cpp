// Tests for net/stream_parsers.h: the SSE, NDJSON and line parsers must yield identical items
// however the byte stream is cut into pieces.
#include "net/stream_parsers.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace edgecoder::net {
namespace {

// A realistic OpenAI Chat Completions stream, as an SSE body.
const std::string kOpenAiStream =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"qwen\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
    "\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"qwen\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},"
    "\"finish_reason\":null}]}\n\n"
    ": keep-alive\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"qwen\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"qwen\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n"
    "data: [DONE]\n\n";

// An Ollama /api/chat NDJSON stream (with a blank line the parser must skip).
const std::string kOllamaStream =
    "{\"model\":\"qwen\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":"
    "\"assistant\",\"content\":\"Hel\"},\"done\":false}\n"
    "{\"model\":\"qwen\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":"
    "\"assistant\",\"content\":\"lo\"},\"done\":false}\n"
    "\n"
    "{\"model\":\"qwen\",\"created_at\":\"2024-01-01T00:00:01Z\",\"message\":{\"role\":"
    "\"assistant\",\"content\":\"\"},\"done\":true,\"total_duration\":12345,\"eval_count\":2}\n";

bool same_events(const std::vector<SseEvent>& a, const std::vector<SseEvent>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].event != b[i].event || a[i].data != b[i].data || a[i].id != b[i].id ||
        a[i].retry_ms != b[i].retry_ms) {
      return false;
    }
  }
  return true;
}

std::vector<SseEvent> sse_in_pieces(const std::vector<std::string_view>& pieces) {
  SseParser parser;
  std::vector<SseEvent> all;
  for (std::string_view piece : pieces) {
    auto events = parser.feed(piece);
    EXPECT_TRUE(events.has_value());
    if (!events) return all;
    all.insert(all.end(), events->begin(), events->end());
  }
  return all;
}

std::vector<std::string> ndjson_in_pieces(const std::vector<std::string_view>& pieces) {
  NdjsonParser parser;
  std::vector<std::string> all;
  for (std::string_view piece : pieces) {
    auto lines = parser.feed(piece);
    EXPECT_TRUE(lines.has_value());
    if (!lines) return all;
    all.insert(all.end(), lines->begin(), lines->end());
  }
  if (auto last = parser.finish()) all.push_back(*last);
  return all;
}

std::vector<std::string_view> bytewise(std::string_view s) {
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < s.size(); ++i) pieces.push_back(s.substr(i, 1));
  return pieces;
}

// Checks that every two-piece split and the one-byte-at-a-time feed give `expected`.
void expect_sse_split_invariant(std::string_view stream, const std::vector<SseEvent>& expected) {
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    auto events = sse_in_pieces({stream.substr(0, cut), stream.substr(cut)});
    ASSERT_TRUE(same_events(events, expected)) << "split at byte " << cut;
  }
  ASSERT_TRUE(same_events(sse_in_pieces(bytewise(stream)), expected)) << "one byte at a time";
}

TEST(SseParserTest, OpenAiStreamIsIdenticalAtEverySplit) {
  auto whole = sse_in_pieces({kOpenAiStream});
  ASSERT_EQ(whole.size(), 5u);
  for (const auto& e : whole) EXPECT_EQ(e.event, "message");
  EXPECT_NE(whole[1].data.find("\"content\":\"Hello\""), std::string::npos);
  EXPECT_TRUE(whole[0].data.starts_with("{\"id\":\"chatcmpl-1\""));
  EXPECT_EQ(whole[4].data, "[DONE]");
  expect_sse_split_invariant(kOpenAiStream, whole);
}

TEST(SseParserTest, CrlfStreamSplitBetweenCrAndLf) {
  const std::string stream =
      "event: delta\r\ndata: one\r\n\r\ndata: two\r\ndata: three\r\n\r\n"
      "data: four\r\rdata: five\n\n";
  auto whole = sse_in_pieces({stream});
  ASSERT_EQ(whole.size(), 4u);
  EXPECT_EQ(whole[0].event, "delta");
  EXPECT_EQ(whole[0].data, "one");
  EXPECT_EQ(whole[1].event, "message");
  EXPECT_EQ(whole[1].data, "two\nthree");
  EXPECT_EQ(whole[2].data, "four");  // a lone "\r" ends a line too
  EXPECT_EQ(whole[3].data, "five");
  // Every "\r\n" pair, split between its two bytes, is still one line break.
  for (std::size_t i = 0; i + 1 < stream.size(); ++i) {
    if (stream[i] == '\r' && stream[i + 1] == '\n') {
      auto events = sse_in_pieces(
          {std::string_view(stream).substr(0, i + 1), std::string_view(stream).substr(i + 1)});
      EXPECT_TRUE(same_events(events, whole)) << "split after \\r at " << i;
    }
  }
  expect_sse_split_invariant(stream, whole);
}

TEST(SseParserTest, FieldRules) {
  static constexpr char kRaw[] =
      "\xEF\xBB\xBF: a comment first\n"
      "data:no-space\n\n"
      "data:  two-spaces\n\n"
      "data\n\n"                    // field without colon: empty data, still an event
      "event: ping\n\n"             // no data: no event, and the name does not leak
      "data: after-ping\n\n"        // so this one is "message"
      "id: 7\ndata: with-id\n\n"    // id applies
      "data: keeps-id\n\n"          // last event id persists
      "id: bad\0id\ndata: nul\n\n"  // id containing NUL is ignored
      "retry: 2500\ndata: r\n\n"
      "retry: 12x\ndata: bad-retry\n\n"
      "unknown: field\ndata: x\n\n"
      "data: unterminated";
  const std::string_view view(kRaw, sizeof(kRaw) - 1);  // the literal holds a NUL
  auto whole = sse_in_pieces({view});
  ASSERT_EQ(whole.size(), 10u);
  EXPECT_EQ(whole[0].data, "no-space");
  EXPECT_EQ(whole[1].data, " two-spaces");  // only one leading space is removed
  EXPECT_EQ(whole[2].data, "");
  EXPECT_EQ(whole[3].event, "message");
  EXPECT_EQ(whole[3].data, "after-ping");
  EXPECT_EQ(whole[3].id, "");
  EXPECT_EQ(whole[4].id, "7");
  EXPECT_EQ(whole[4].data, "with-id");
  EXPECT_EQ(whole[5].id, "7");
  EXPECT_EQ(whole[6].id, "7");
  EXPECT_EQ(whole[6].data, "nul");
  EXPECT_EQ(whole[7].retry_ms, std::optional<long>(2500));
  EXPECT_EQ(whole[8].retry_ms, std::nullopt);
  EXPECT_EQ(whole[8].data, "bad-retry");
  EXPECT_EQ(whole[9].data, "x");
  for (std::size_t i = 0; i < 7; ++i) EXPECT_EQ(whole[i].retry_ms, std::nullopt) << i;
  expect_sse_split_invariant(view, whole);
}

TEST(SseParserTest, BomIsStrippedEvenWhenSplit) {
  const std::string stream =
      "\xEF\xBB\xBF"
      "data: x\n\n";
  auto whole = sse_in_pieces({stream});
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0].data, "x");
  expect_sse_split_invariant(stream, whole);
}

TEST(SseParserTest, OversizedLineIsAnError) {
  LineSplitter lines(16);
  auto ok = lines.feed("0123456789abcdef\n");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->size(), 1u);
  auto bad = lines.feed("0123456789");
  ASSERT_TRUE(bad.has_value());
  auto worse = lines.feed("0123456789");
  ASSERT_FALSE(worse.has_value());
  EXPECT_EQ(worse.error().code, core::Errc::invalid_argument);

  // The SSE parser uses the default 16 MiB limit and passes the splitter's error on.
  SseParser parser;
  std::string huge(16 * 1024 * 1024 + 1, 'a');
  auto sse = parser.feed(huge);
  ASSERT_FALSE(sse.has_value());
  EXPECT_EQ(sse.error().code, core::Errc::invalid_argument);
}

TEST(LineSplitterTest, AllLineEndingsAndFinish) {
  LineSplitter lines;
  auto out = lines.feed("a\nb\r\nc\rd\r");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, (std::vector<std::string>{"a", "b", "c", "d"}));
  out = lines.feed("\ne");  // "\n" pairs with the "\r" that ended the previous piece
  ASSERT_TRUE(out.has_value());
  EXPECT_TRUE(out->empty());
  EXPECT_EQ(lines.finish(), std::optional<std::string>("e"));
  EXPECT_EQ(lines.finish(), std::nullopt);
  out = lines.feed("\r\n\n");  // "\r\n" then a blank line
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, (std::vector<std::string>{"", ""}));
}

TEST(NdjsonParserTest, OllamaStreamIsIdenticalAtEverySplit) {
  auto whole = ndjson_in_pieces({kOllamaStream});
  ASSERT_EQ(whole.size(), 3u);
  EXPECT_NE(whole[0].find("\"content\":\"Hel\""), std::string::npos);
  EXPECT_NE(whole[2].find("\"done\":true"), std::string::npos);
  const std::string_view stream = kOllamaStream;
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    ASSERT_EQ(ndjson_in_pieces({stream.substr(0, cut), stream.substr(cut)}), whole)
        << "split at byte " << cut;
  }
  EXPECT_EQ(ndjson_in_pieces(bytewise(stream)), whole);
}

TEST(NdjsonParserTest, CrlfBlankLinesAndUnterminatedLast) {
  const std::string stream = "{\"a\":1}\r\n  \r\n{\"b\":2}\r\n{\"c\":3}";
  auto whole = ndjson_in_pieces({stream});
  EXPECT_EQ(whole, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"}));
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    const std::string_view v = stream;
    ASSERT_EQ(ndjson_in_pieces({v.substr(0, cut), v.substr(cut)}), whole) << cut;
  }
}

}  // namespace
}  // namespace edgecoder::net
