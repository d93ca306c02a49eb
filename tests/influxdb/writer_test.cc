// The sink writer against a scripted HTTP server on a loopback port (the
// async tests' evhttp server): the exactly-once protocol (nothing written
// before its checkpoint completes, pending batches in every checkpoint
// until accepted, restore and rescale), request shapes of both APIs,
// retries with backoff on the task's timers, a refused point split out of
// its batch, failures that stop the task with a message saying what to do,
// and backpressure.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>

#include "tests/async/support/http_test_server.h"
#include "tests/influxdb/test_context.h"
#include "tests/integration/support.h"

namespace sluice::influxdb {
namespace {

using async_test::HttpTestServer;
using async_test::RecordedRequest;
using async_test::ScriptedReply;
using testing::open_writer;
using Clock = std::chrono::steady_clock;

struct Count {
  int64_t window_start = 0;
  std::string page_url;
  int64_t count = 0;
  SLUICE_FIELDS(window_start, page_url, count)
};

std::string gunzip(const std::string& in) {
  z_stream zs{};
  inflateInit2(&zs, 15 + 32);
  std::string out(in.size() * 20 + 1024, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  EXPECT_EQ(rc, Z_STREAM_END);
  return out;
}

/// A request as the test looks at it: body decompressed, time of arrival.
struct Seen {
  RecordedRequest req;
  std::string text;
  Clock::time_point at;
};

/// The scripted InfluxDB: records every request; `answer` decides the reply
/// (default: 204 for everything).
class FakeInflux {
 public:
  FakeInflux() {
    auto s = HttpTestServer::start();
    EXPECT_TRUE(s.is_ok());
    server_ = std::move(*s);
    server_->set_handler([this](const RecordedRequest& r) {
      Seen s{r, r.header("Content-Encoding") == "gzip" ? gunzip(r.body) : r.body, Clock::now()};
      std::lock_guard lk(mu_);
      seen_.push_back(s);
      return answer_ ? answer_(s, seen_.size()) : ScriptedReply{204, "", {}};
    });
  }
  ~FakeInflux() { server_.reset(); }
  /// `fn(request, number of requests so far)`; under the server's lock.
  void answer(std::function<ScriptedReply(const Seen&, size_t)> fn) {
    std::lock_guard lk(mu_);
    answer_ = std::move(fn);
  }
  std::vector<Seen> seen() {
    std::lock_guard lk(mu_);
    return seen_;
  }
  /// Write requests with points (not the empty probe).
  std::vector<Seen> writes() {
    std::vector<Seen> out;
    for (auto& s : seen())
      if (s.req.uri.find("/write") != std::string::npos && !s.text.empty()) out.push_back(s);
    return out;
  }
  /// Every line of every write that was answered 2xx.
  std::multiset<std::string> written() {
    std::lock_guard lk(mu_);
    return written_;
  }
  void accept(const std::string& text) {
    size_t start = 0;
    while (start < text.size()) {
      size_t nl = text.find('\n', start);
      written_.insert(text.substr(start, nl - start));
      start = nl + 1;
    }
  }
  std::string uri(const std::string& params, const std::string& db = "db") {
    return "influxdb://127.0.0.1:" + std::to_string(server_->port()) + (db.empty() ? "" : "/" + db) + "?" + params;
  }
  HttpTestServer& server() { return *server_; }

  /// The default reply of a real server: 204, and the points are stored.
  ScriptedReply ok(const Seen& s) {
    accept(s.text);
    return {204, "", {}};
  }

 private:
  std::unique_ptr<HttpTestServer> server_;
  std::mutex mu_;
  std::vector<Seen> seen_;
  std::multiset<std::string> written_;
  std::function<ScriptedReply(const Seen&, size_t)> answer_;
};

constexpr const char* kParams = "measurement=pc&tags=page_url&time=window_start";

std::string line(int64_t ws, const std::string& page, int64_t n) {
  return "pc,page_url=" + page + " count=" + std::to_string(n) + "i " + std::to_string(ws);
}

TEST(InfluxWriter, NothingIsWrittenBeforeTheCheckpointCompletes) {
  FakeInflux db;
  db.answer([&](const Seen& s, size_t) { return db.ok(s); });
  auto w = open_writer<Count>(db.uri(kParams));
  ASSERT_TRUE(w.writer);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(w.writer->write(Count{1000 * i, "/p/" + std::to_string(i), i + 1}, EventTime(0)).is_ok());
  w.ctx->run_until([] { return false; }, std::chrono::milliseconds(300));
  ASSERT_EQ(db.seen().size(), 1u);  // the probe: an empty write that checks address, credentials and database
  EXPECT_EQ(db.seen()[0].req.uri, "/write?db=db&precision=ms");
  EXPECT_TRUE(db.seen()[0].req.body.empty());
  auto state = w.writer->snapshot_state(CheckpointId(1));
  ASSERT_TRUE(state.is_ok());
  EXPECT_FALSE(state->empty());
  w.ctx->run_until([] { return false; }, std::chrono::milliseconds(200));
  EXPECT_TRUE(db.writes().empty());
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return w.core().pending_points() == 0; }));
  ASSERT_EQ(db.writes().size(), 1u);
  EXPECT_EQ(db.writes()[0].text, line(0, "/p/0", 1) + "\n" + line(1000, "/p/1", 2) + "\n" + line(2000, "/p/2", 3) + "\n");
  EXPECT_EQ(w.core().stats().points_accepted, 3u);
  // Accepted points are not in the next checkpoint.
  auto next = w.writer->snapshot_state(CheckpointId(2));
  ASSERT_TRUE(next.is_ok());
  EXPECT_TRUE(next->empty());
  EXPECT_TRUE(w.ctx->failures.empty());
}

TEST(InfluxWriter, TwoXRequestsCarryOrgBucketTokenAndGzip) {
  FakeInflux db;
  it::TempDir dir;
  it::write_file(dir.file("token"), "tok-123\n");
  auto w = open_writer<Count>(db.uri("org=acme&bucket=clicks&measurement=pc&tags=page_url&time=window_start&"
                                     "precision=s&token_file=" + dir.file("token"), ""));
  ASSERT_TRUE(w.writer);
  ASSERT_TRUE(w.writer->write(Count{1700000000, "a b", 7}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->snapshot_state(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return w.core().pending_points() == 0; }));
  auto writes = db.writes();
  ASSERT_EQ(writes.size(), 1u);
  const RecordedRequest& r = writes[0].req;
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.uri, "/api/v2/write?org=acme&bucket=clicks&precision=s");
  EXPECT_EQ(r.header("Authorization"), "Token tok-123");
  EXPECT_EQ(r.header("Content-Encoding"), "gzip");
  EXPECT_EQ(r.header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(writes[0].text, "pc,page_url=a\\ b count=7i 1700000000\n");
  EXPECT_NE(r.body, writes[0].text);  // compressed on the wire
}

TEST(InfluxWriter, OneXBasicAuthAndCreateDatabaseFirst) {
  FakeInflux db;
  db.answer([&](const Seen& s, size_t) -> ScriptedReply {
    if (s.req.uri == "/query") return {200, R"({"results":[{"statement_id":0}]})", {}};
    return db.ok(s);
  });
  it::TempDir dir;
  it::write_file(dir.file("pw"), "p4ss:w0rd\n");
  auto w = open_writer<Count>("influxdb://writer@127.0.0.1:" + std::to_string(db.server().port()) +
                                  "/my%20db?" + std::string(kParams) + "&gzip=false&create_database=true&password_file=" +
                                  dir.file("pw"),
                              /*checkpointing=*/false);
  ASSERT_TRUE(w.writer);
  ASSERT_TRUE(w.writer->write(Count{5, "x", 1}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->flush().is_ok());
  auto seen = db.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].req.uri, "/query");
  EXPECT_EQ(seen[0].req.body, "q=CREATE%20DATABASE%20%22my%20db%22");
  EXPECT_EQ(seen[0].req.header("Content-Type"), "application/x-www-form-urlencoded");
  for (const auto& s : seen) EXPECT_EQ(s.req.header("Authorization"), "Basic d3JpdGVyOnA0c3M6dzByZA==");  // writer:p4ss:w0rd
  EXPECT_EQ(seen[1].req.uri, "/write?db=my%20db&precision=ms");
  EXPECT_EQ(seen[2].text, line(5, "x", 1) + "\n");
  EXPECT_TRUE(seen[2].req.header("Content-Encoding").empty());
}

TEST(InfluxWriter, ServerErrorsAreRetriedWithBackoffOnTimersNotBySleeping) {
  FakeInflux db;
  db.answer([&](const Seen& s, size_t n) -> ScriptedReply {
    if (s.text.empty()) return {204, "", {}};
    if (n <= 4) return {503, R"({"error":"overloaded"})", {}};
    if (n == 5) return {429, R"({"error":"slow down"})", {{"Retry-After", "1"}}};
    return db.ok(s);
  });
  auto w = open_writer<Count>(db.uri(kParams));
  ASSERT_TRUE(w.writer);
  ASSERT_TRUE(w.ctx->run_until([&] { return db.seen().size() == 1; }));  // probe answered
  w.ctx->timer_mailbox().run_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(w.writer->write(Count{1, "a", 1}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->snapshot_state(CheckpointId(1)).is_ok());
  auto t0 = Clock::now();
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  // The task thread is never held: completing, writing and snapshotting
  // return at once while the retries wait on timers.
  ASSERT_TRUE(w.ctx->run_until([&] { return db.seen().size() >= 3; }));
  auto t1 = Clock::now();
  ASSERT_TRUE(w.writer->write(Count{2, "b", 1}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->snapshot_state(CheckpointId(2)).is_ok());
  EXPECT_LT(Clock::now() - t1, std::chrono::milliseconds(250));  // a retry waits 100 ms to 1 s
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(2)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return w.core().pending_points() == 0; }));
  auto seen = db.seen();
  ASSERT_EQ(seen.size(), 7u);  // the probe, 503 three times, 429, then both batches
  auto gap = [&](size_t i) { return std::chrono::duration_cast<std::chrono::milliseconds>(seen[i].at - seen[i - 1].at); };
  EXPECT_GE(gap(2).count(), 90);    // 100 ms
  EXPECT_GE(gap(3).count(), 190);   // 200 ms
  EXPECT_GE(gap(4).count(), 390);   // 400 ms
  EXPECT_GE(gap(5).count(), 990);   // Retry-After: 1 (s) beats the 800 ms backoff
  EXPECT_EQ(w.core().stats().retries, 4u);
  EXPECT_EQ(db.written(), (std::multiset<std::string>{line(1, "a", 1), line(2, "b", 1)}));
  EXPECT_TRUE(w.ctx->failures.empty());
  (void)t0;
}

TEST(InfluxWriter, ARefusedPointIsSplitOutAndTheRestOfTheBatchIsWritten) {
  FakeInflux db;
  db.answer([&](const Seen& s, size_t) -> ScriptedReply {
    if (s.text.find("/bad") != std::string::npos) {
      return {400, R"({"error":"partial write: unable to parse 'pc,page_url=/bad ...': invalid field format dropped=0"})", {}};
    }
    return db.ok(s);
  });
  auto w = open_writer<Count>(db.uri(kParams));
  ASSERT_TRUE(w.writer);
  std::multiset<std::string> expected;
  for (int i = 0; i < 100; ++i) {
    std::string page = i == 37 ? "/bad" : "/p/" + std::to_string(i);
    ASSERT_TRUE(w.writer->write(Count{i, page, 1}, EventTime(0)).is_ok());
    if (i != 37) expected.insert(line(i, page, 1));
  }
  ASSERT_TRUE(w.writer->snapshot_state(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return w.core().pending_points() == 0; }));
  EXPECT_EQ(db.written(), expected);
  ASSERT_EQ(w.ctx->dead_letters.size(), 1u);
  EXPECT_EQ(w.ctx->dead_letters[0].payload, line(37, "/bad", 1));
  EXPECT_NE(w.ctx->dead_letters[0].reason.find("InfluxDB refused the point (HTTP 400: partial write: unable to parse"),
            std::string::npos)
      << w.ctx->dead_letters[0].reason;
  // Bisection: about two requests per level, not one per point.
  EXPECT_LE(db.writes().size(), 16u);
  EXPECT_EQ(w.core().stats().points_refused, 1u);
  EXPECT_TRUE(w.ctx->failures.empty());
}

TEST(InfluxWriter, PointsAllDroppedByATypeConflictAreDeadLettersAtOnce) {
  FakeInflux db;
  db.answer([&](const Seen& s, size_t) -> ScriptedReply {
    if (s.text.empty()) return {204, "", {}};
    size_t n = std::count(s.text.begin(), s.text.end(), '\n');
    return {400,
            "{\"error\":\"partial write: field type conflict: input field \\\"count\\\" on measurement \\\"pc\\\" is "
            "type integer, already exists as type float dropped=" + std::to_string(n) + "\"}",
            {}};
  });
  auto w = open_writer<Count>(db.uri(kParams));
  ASSERT_TRUE(w.writer);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(w.writer->write(Count{i, "p", 1}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->snapshot_state(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return w.core().pending_points() == 0; }));
  EXPECT_EQ(db.writes().size(), 1u);
  ASSERT_EQ(w.ctx->dead_letters.size(), 10u);
  EXPECT_NE(w.ctx->dead_letters[3].reason.find("field type conflict: input field \"count\""), std::string::npos);
}

TEST(InfluxWriter, AnOutageLongerThanRetryTimeoutFailsTheTaskAndKeepsThePoints) {
  FakeInflux db;
  db.answer([&](const Seen& s, size_t) { return db.ok(s); });
  auto w = open_writer<Count>(db.uri(std::string(kParams) + "&retry_timeout=400ms"));
  ASSERT_TRUE(w.writer);
  ASSERT_TRUE(w.ctx->run_until([&] { return db.seen().size() == 1; }));
  w.ctx->timer_mailbox().run_for(std::chrono::milliseconds(50));
  db.server().down();
  ASSERT_TRUE(w.writer->write(Count{1, "a", 1}, EventTime(0)).is_ok());
  auto state = w.writer->snapshot_state(CheckpointId(1));
  ASSERT_TRUE(state.is_ok());
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return !w.ctx->failures.empty(); }, std::chrono::seconds(5)));
  const std::string msg = w.ctx->failures[0].message();
  EXPECT_NE(msg.find("writing to database db still fails after 400ms of retries (retry_timeout)"), std::string::npos)
      << msg;
  EXPECT_GE(w.core().stats().retries, 2u);
  EXPECT_EQ(w.core().pending_points(), 1u);
  // The completed checkpoint holds the batch: a restore writes it.
  ASSERT_TRUE(db.server().up().is_ok());
  runtime::OperatorRestore restore{true, 1, {*state}};
  auto again = open_writer<Count>(db.uri(kParams), true, restore);
  ASSERT_TRUE(again.writer);
  ASSERT_TRUE(again.ctx->run_until([&] { return again.core().pending_points() == 0; }));
  EXPECT_EQ(db.written(), (std::multiset<std::string>{line(1, "a", 1)}));
}

TEST(InfluxWriter, RefusedCredentialsFailAtOnceWithoutShowingTheSecret) {
  FakeInflux db;
  db.answer([](const Seen&, size_t) { return ScriptedReply{401, R"({"error":"authorization failed"})", {}}; });
  it::TempDir dir;
  it::write_file(dir.file("pw"), "Sup3r-S3cret\n");
  auto w = open_writer<Count>("influxdb://writer@127.0.0.1:" + std::to_string(db.server().port()) + "/db?" +
                              std::string(kParams) + "&password_file=" + dir.file("pw"));
  ASSERT_TRUE(w.writer);
  ASSERT_TRUE(w.ctx->run_until([&] { return !w.ctx->failures.empty(); }));
  const std::string msg = w.ctx->failures[0].message();
  EXPECT_NE(msg.find("refused the credentials (HTTP 401: authorization failed)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("password_file="), std::string::npos) << msg;
  EXPECT_EQ(msg.find("Sup3r-S3cret"), std::string::npos);
  EXPECT_EQ(db.seen().size(), 1u);  // not retried
  // Later calls report the failure too.
  EXPECT_FALSE(w.writer->write(Count{1, "a", 1}, EventTime(0)).is_ok());
}

TEST(InfluxWriter, AMissingPasswordOrTokenIsRefusedAtOpenNamingWhereToPutIt) {
  FakeInflux db;
  ::unsetenv("SLUICE_TEST_NO_SUCH_VAR");
  auto sink = InfluxDbSink<Count>::from_uri("influxdb://writer@127.0.0.1:1/db?" + std::string(kParams) +
                                            "&password_env=SLUICE_TEST_NO_SUCH_VAR");
  ASSERT_TRUE(sink.is_ok());
  testing::TestContext ctx;
  auto w = (*sink)->create_writer();
  ASSERT_TRUE(w->initialize_state({}).is_ok());
  Status st = w->open(ctx);
  EXPECT_NE(st.message().find("user writer needs a password: set SLUICE_TEST_NO_SUCH_VAR"), std::string::npos)
      << st.to_string();
  auto v2 = InfluxDbSink<Count>::from_uri("influxdb://127.0.0.1:1?org=o&bucket=b&" + std::string(kParams) +
                                          "&token_env=SLUICE_TEST_NO_SUCH_VAR");
  ASSERT_TRUE(v2.is_ok());
  auto w2 = (*v2)->create_writer();
  ASSERT_TRUE(w2->initialize_state({}).is_ok());
  st = w2->open(ctx);
  EXPECT_NE(st.message().find("needs a token: set SLUICE_TEST_NO_SUCH_VAR"), std::string::npos) << st.to_string();
  ::setenv("SLUICE_TEST_TOKEN_VAR", "from-env", 1);
  auto v3 = open_writer<Count>(db.uri("org=o&bucket=b&" + std::string(kParams) + "&token_env=SLUICE_TEST_TOKEN_VAR", ""));
  ASSERT_TRUE(v3.writer);
  ASSERT_TRUE(v3.ctx->run_until([&] { return !db.seen().empty(); }));
  EXPECT_EQ(db.seen()[0].req.header("Authorization"), "Token from-env");
}

TEST(InfluxWriter, AMissingDatabaseSaysHowToCreateIt) {
  FakeInflux db;
  db.answer([](const Seen&, size_t) { return ScriptedReply{404, R"({"error":"database not found: \"db\""})", {}}; });
  auto w = open_writer<Count>(db.uri(kParams));
  ASSERT_TRUE(w.writer);
  ASSERT_TRUE(w.ctx->run_until([&] { return !w.ctx->failures.empty(); }));
  const std::string msg = w.ctx->failures[0].message();
  EXPECT_NE(msg.find("database db not found (HTTP 404: database not found: \"db\"); create it, or add "
                     "create_database=true to the URI"),
            std::string::npos)
      << msg;
}

TEST(InfluxWriter, APendingBatchStaysInEveryCheckpointUntilTheServerAcceptsIt) {
  FakeInflux db;
  std::atomic<bool> refuse{true};
  db.answer([&](const Seen& s, size_t) -> ScriptedReply {
    if (!s.text.empty() && refuse) return {503, "", {}};
    return db.ok(s);
  });
  auto w = open_writer<Count>(db.uri(kParams));
  ASSERT_TRUE(w.writer);
  ASSERT_TRUE(w.writer->write(Count{1, "a", 1}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->snapshot_state(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return w.core().stats().retries >= 1; }));
  ASSERT_TRUE(w.writer->write(Count{2, "b", 1}, EventTime(0)).is_ok());
  auto second = w.writer->snapshot_state(CheckpointId(2));
  ASSERT_TRUE(second.is_ok());
  // A crash now: restoring checkpoint 2 writes both checkpoints' points.
  FakeInflux other;
  other.answer([&](const Seen& s, size_t) { return other.ok(s); });
  auto restored = open_writer<Count>(other.uri(kParams), true, runtime::OperatorRestore{true, 1, {*second}});
  ASSERT_TRUE(restored.writer);
  ASSERT_TRUE(restored.ctx->run_until([&] { return restored.core().pending_points() == 0; }));
  EXPECT_EQ(other.written(), (std::multiset<std::string>{line(1, "a", 1), line(2, "b", 1)}));
  // No crash: once the server is back the first batch is written, and it
  // is gone from the next checkpoint.
  refuse = false;
  ASSERT_TRUE(w.ctx->run_until([&] { return w.core().pending_points() == 1; }));
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(2)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return w.core().pending_points() == 0; }));
  auto third = w.writer->snapshot_state(CheckpointId(3));
  ASSERT_TRUE(third.is_ok());
  EXPECT_TRUE(third->empty());
  EXPECT_EQ(db.written(), (std::multiset<std::string>{line(1, "a", 1), line(2, "b", 1)}));
}

TEST(InfluxWriter, AnAbortedCheckpointsPointsAreWrittenWithTheNextCompletedOne) {
  FakeInflux db;
  db.answer([&](const Seen& s, size_t) { return db.ok(s); });
  auto w = open_writer<Count>(db.uri(kParams));
  ASSERT_TRUE(w.writer);
  ASSERT_TRUE(w.writer->write(Count{1, "a", 1}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->snapshot_state(CheckpointId(1)).is_ok());
  w.writer->notify_checkpoint_aborted(CheckpointId(1));
  ASSERT_TRUE(w.writer->write(Count{2, "b", 1}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->snapshot_state(CheckpointId(2)).is_ok());
  ASSERT_TRUE(w.writer->write(Count{3, "c", 1}, EventTime(0)).is_ok());  // after barrier 2
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(2)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return w.core().pending_points() == 1; }));
  w.ctx->run_until([] { return false; }, std::chrono::milliseconds(100));
  EXPECT_EQ(db.written(), (std::multiset<std::string>{line(1, "a", 1), line(2, "b", 1)}));
}

TEST(InfluxWriter, RestoreRewritesTheCheckpointsPointsAndRescalesByIndex) {
  FakeInflux db;
  db.answer([&](const Seen& s, size_t) { return db.ok(s); });
  std::vector<std::string> states;
  for (int sub = 0; sub < 3; ++sub) {
    auto w = open_writer<Count>(db.uri(kParams), true, {}, sub, 3);
    ASSERT_TRUE(w.writer);
    ASSERT_TRUE(w.writer->write(Count{sub, "s" + std::to_string(sub), 1}, EventTime(0)).is_ok());
    auto st = w.writer->snapshot_state(CheckpointId(4));
    ASSERT_TRUE(st.is_ok());
    states.push_back(*st);
  }
  EXPECT_TRUE(db.written().empty());
  // Parallelism 3 -> 2: old subtasks 0 and 2 go to new subtask 0, 1 to 1.
  runtime::OperatorRestore restore{true, 3, states};
  auto a = open_writer<Count>(db.uri(kParams), true, restore, 0, 2);
  ASSERT_TRUE(a.writer);
  ASSERT_TRUE(a.ctx->run_until([&] { return a.core().pending_points() == 0; }));
  EXPECT_EQ(db.written(), (std::multiset<std::string>{line(0, "s0", 1), line(2, "s2", 1)}));
  auto b = open_writer<Count>(db.uri(kParams), true, restore, 1, 2);
  ASSERT_TRUE(b.writer);
  ASSERT_TRUE(b.ctx->run_until([&] { return b.core().pending_points() == 0; }));
  EXPECT_EQ(db.written().size(), 3u);
}

TEST(InfluxWriter, ACheckpointDuringASplitHoldsOnlyThePointsNotYetDone) {
  FakeInflux db;
  db.answer([&](const Seen& s, size_t n) -> ScriptedReply {
    if (s.text.empty()) return {204, "", {}};
    if (n == 2) return {400, R"({"error":"something in here"})", {}};  // the whole batch: split it
    if (n == 3) return db.ok(s);                                        // first half done
    db.server().set_stalled(true);                                      // second half: no answer yet
    return {204, "", {}};
  });
  auto w = open_writer<Count>(db.uri(kParams));
  ASSERT_TRUE(w.writer);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(w.writer->write(Count{i, "p", 1}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->snapshot_state(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return db.seen().size() == 4; }));
  EXPECT_EQ(w.core().stats().points_accepted, 2u);
  auto state = w.writer->snapshot_state(CheckpointId(2));
  ASSERT_TRUE(state.is_ok());
  FakeInflux other;
  other.answer([&](const Seen& s, size_t) { return other.ok(s); });
  auto restored = open_writer<Count>(other.uri(kParams), true, runtime::OperatorRestore{true, 1, {*state}});
  ASSERT_TRUE(restored.writer);
  ASSERT_TRUE(restored.ctx->run_until([&] { return restored.core().pending_points() == 0; }));
  EXPECT_EQ(other.written(), (std::multiset<std::string>{line(2, "p", 1), line(3, "p", 1)}));
  db.server().set_stalled(false);
}

TEST(InfluxWriter, InputIsSuspendedWhileTooMuchWaitsAndResumedWhenWritten) {
  FakeInflux db;
  db.answer([&](const Seen& s, size_t) { return db.ok(s); });
  auto w = open_writer<Count>(db.uri(std::string(kParams) + "&max_pending_bytes=300&batch_points=4"));
  ASSERT_TRUE(w.writer);
  ASSERT_TRUE(w.ctx->run_until([&] { return db.seen().size() == 1; }));
  w.ctx->timer_mailbox().run_for(std::chrono::milliseconds(50));
  db.server().set_stalled(true);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(w.writer->write(Count{i, "/page", 1}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->snapshot_state(CheckpointId(1)).is_ok());
  EXPECT_FALSE(w.ctx->timer_mailbox().input_suspended());  // waiting for a barrier never suspends
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  EXPECT_TRUE(w.ctx->timer_mailbox().input_suspended());
  db.server().set_stalled(false);
  ASSERT_TRUE(w.ctx->run_until([&] { return w.core().pending_points() == 0; }));
  EXPECT_FALSE(w.ctx->timer_mailbox().input_suspended());
  EXPECT_EQ(db.written().size(), 20u);
  EXPECT_EQ(db.writes().size(), 5u);  // batch_points=4
}

TEST(InfluxWriter, WithoutCheckpointingBatchesGoBySizeAndAge) {
  FakeInflux db;
  db.answer([&](const Seen& s, size_t) { return db.ok(s); });
  auto w = open_writer<Count>(db.uri(std::string(kParams) + "&batch_points=10&flush_interval=300ms"), false);
  ASSERT_TRUE(w.writer);
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(w.writer->write(Count{i, "p", 1}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return db.written().size() == 20; }, std::chrono::seconds(5)));
  auto t = Clock::now();
  ASSERT_TRUE(w.ctx->run_until([&] { return db.written().size() == 25; }, std::chrono::seconds(5)));
  EXPECT_GE(Clock::now() - t, std::chrono::milliseconds(100));  // the last 5 waited for flush_interval
  ASSERT_TRUE(w.writer->write(Count{99, "p", 1}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->flush().is_ok());  // end of input: written before it returns
  EXPECT_EQ(db.written().size(), 26u);
  EXPECT_EQ(db.writes().size(), 4u);
}

}  // namespace
}  // namespace sluice::influxdb
