// The Postgres sink against a real server: append and upsert, column
// types, table creation and schema checks, authentication without leaking
// the password, dead letters, at-least-once without checkpointing, the
// server restarting mid-run, and a throughput measurement.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>
#include <thread>

#include "engine/common/metrics.h"
#include "tests/postgres/test_env.h"

namespace sluice::postgres::testing {

namespace {
PgServer* g_server = nullptr;
// At exit the server is stopped and its directory removed: a server left
// running would outlive the test run (and hold whatever it inherited).
void stop_server() {
  delete g_server;
  g_server = nullptr;
}
}  // namespace

PgServer& server() {
  static PgServer* s = [] {
    std::string error;
    auto p = PgServer::start(&error);
    if (!p) {
      std::cerr << "cannot start PostgreSQL: " << error << std::endl;
      std::abort();
    }
    g_server = p.release();
    std::atexit(stop_server);
    return g_server;
  }();
  return *s;
}

std::string uri(const std::string& params) {
  return "postgres://postgres@127.0.0.1:" + std::to_string(server().port()) + "/sluice?" + params;
}

void create_role(const std::string& role, const std::string& password) {
  server().sql("CREATE ROLE " + role + " LOGIN PASSWORD '" + password + "'");
  server().sql("GRANT ALL ON SCHEMA public TO " + role);
  server().sql("ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO " + role);
  server().sql("DO $$ BEGIN IF to_regclass('sluice_sink_progress') IS NOT NULL THEN "
               "GRANT ALL ON sluice_sink_progress TO " + role + "; END IF; END $$");
}

namespace {

struct PageCount {
  int64_t window_start = 0;
  int64_t window_end = 0;
  std::string page_url;
  int64_t count = 0;
  SLUICE_FIELDS(window_start, window_end, page_url, count)
};
struct Odd {
  int64_t select = 0;
  std::string Mixed;
  SLUICE_FIELDS(select, Mixed)
};
struct Nested {
  int64_t id = 0;
  std::vector<int64_t> list;
  SLUICE_FIELDS(id, list)
};
/// text[] and a delete marker (sessions_funnel's session rows in small).
struct Tagged {
  int64_t id = 0;
  std::vector<std::string> tags;
  bool gone = false;
  SLUICE_FIELDS(id, tags, gone)
};

template <class T>
struct Writer {
  std::unique_ptr<runtime::SinkWriter<T>> w;
  std::unique_ptr<FakeContext> ctx;
};

template <class T>
Result<Writer<T>> open_writer(const std::string& u, int subtask = 0, int parallelism = 1, bool checkpointing = true,
                              runtime::OperatorRestore restore = {}) {
  SLUICE_ASSIGN_OR_RETURN(auto sink, PostgresSink<T>::from_uri(u));
  Writer<T> out{sink->create_writer(), std::make_unique<FakeContext>(subtask, parallelism, checkpointing)};
  SLUICE_RETURN_IF_ERROR(out.w->initialize_state(restore));
  SLUICE_RETURN_IF_ERROR(out.w->open(*out.ctx));
  return out;
}

/// Writes, snapshots checkpoint `cp` and commits it.
template <class T>
void commit(runtime::SinkWriter<T>& w, const std::vector<T>& rows, int64_t cp) {
  for (const auto& r : rows) ASSERT_TRUE(w.write(r, EventTime::min()).is_ok());
  ASSERT_TRUE(w.snapshot_state(CheckpointId(cp)).is_ok());
  Status st = w.notify_checkpoint_complete(CheckpointId(cp));
  ASSERT_TRUE(st.is_ok()) << st.message();
}

std::vector<std::vector<std::string>> rows_of(const std::string& sql) {
  std::vector<std::vector<std::string>> out;
  for (const auto& r : server().sql(sql).rows) {
    std::vector<std::string> v;
    for (const auto& c : r) v.push_back(c.value_or("NULL"));
    out.push_back(v);
  }
  return out;
}

TEST(PostgresSink, AppendWritesEveryTypeAndNothingBeforeTheCheckpointCompletes) {
  auto w = open_writer<AllTypes>(uri("table=types&create_table=true"));
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  auto& wr = *w->w;
  std::vector<AllTypes> in = {
      {1, -7, 0.1, true, "plain"},
      {2, 2147483647, -1e300, false, "tab\there, newline\nhere, back\\slash, quote ' \" and ünïcode"},
      {std::numeric_limits<int64_t>::min(), 0, std::numeric_limits<double>::infinity(), true, ""},
      {4, 1, std::nan(""), false, "\\N"},
  };
  for (const auto& r : in) ASSERT_TRUE(wr.write(r, EventTime::min()).is_ok());
  ASSERT_TRUE(wr.snapshot_state(CheckpointId(1)).is_ok());
  EXPECT_EQ(server().scalar("SELECT count(*) FROM types"), 0) << "visible before the checkpoint completed";
  ASSERT_TRUE(wr.notify_checkpoint_complete(CheckpointId(1)).is_ok());
  auto got = rows_of("SELECT id, small, ratio::text, flag, text FROM types ORDER BY id");
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0], (std::vector<std::string>{"-9223372036854775808", "0", "Infinity", "t", ""}));
  EXPECT_EQ(got[1], (std::vector<std::string>{"1", "-7", "0.1", "t", "plain"}));
  EXPECT_EQ(got[2], (std::vector<std::string>{"2", "2147483647", "-1e+300", "f", in[1].text}));
  EXPECT_EQ(got[3], (std::vector<std::string>{"4", "1", "NaN", "f", "\\N"}));
  auto types = rows_of(
      "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'types'::regclass "
      "AND attnum > 0 ORDER BY attnum");
  EXPECT_EQ(types, (std::vector<std::vector<std::string>>{{"id", "bigint"},
                                                          {"small", "integer"},
                                                          {"ratio", "double precision"},
                                                          {"flag", "boolean"},
                                                          {"text", "text"}}));
  ASSERT_TRUE(wr.close().is_ok());
}

TEST(PostgresSink, UpsertKeepsTheLastRowPerKeyWithinAndAcrossCheckpoints) {
  auto w = open_writer<Row>(uri("table=up&mode=upsert&key=id&create_table=true"));
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  commit<Row>(*w->w, {{1, "a"}, {2, "b"}, {1, "a2"}, {3, "c"}, {1, "a3"}}, 1);
  commit<Row>(*w->w, {{2, "b2"}, {4, "d"}}, 2);
  EXPECT_EQ(rows_of("SELECT id, note FROM up ORDER BY id"),
            (std::vector<std::vector<std::string>>{{"1", "a3"}, {"2", "b2"}, {"3", "c"}, {"4", "d"}}));
  // The created table's primary key is the key.
  EXPECT_EQ(server().scalar("SELECT count(*) FROM pg_index WHERE indrelid = 'up'::regclass AND indisprimary"), 1);
}

TEST(PostgresSink, UpsertOnACompositeKeyLikeClickstreamsResults) {
  auto w = open_writer<PageCount>(uri("table=page_counts_unit&mode=upsert&key=window_start,page_url&create_table=true"));
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  commit<PageCount>(*w->w, {{0, 60, "/a", 1}, {0, 60, "/b", 2}, {60, 120, "/a", 3}}, 1);
  commit<PageCount>(*w->w, {{0, 60, "/a", 5}}, 2);
  EXPECT_EQ(rows_of("SELECT window_start, page_url, count FROM page_counts_unit ORDER BY 1, 2"),
            (std::vector<std::vector<std::string>>{{"0", "/a", "5"}, {"0", "/b", "2"}, {"60", "/a", "3"}}));
}

TEST(PostgresSink, TextArraysKeepEveryElementAsWritten) {
  auto w = open_writer<Tagged>(uri("table=tagged&create_table=true"));
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  const std::vector<std::string> odd{"plain", "with \"quotes\"", "back\\slash", "comma, and {braces}", "NULL", "",
                                     "tab\there\nline", "caf\xc3\xa9"};
  commit<Tagged>(*w->w, {{1, odd, false}, {2, {}, true}, {3, {"/"}, false}}, 1);
  auto got = rows_of("SELECT id, ord, tag FROM tagged, unnest(tags) WITH ORDINALITY AS u(tag, ord) ORDER BY id, ord");
  ASSERT_EQ(got.size(), odd.size() + 1);
  for (size_t i = 0; i < odd.size(); ++i) {
    EXPECT_EQ(got[i], (std::vector<std::string>{"1", std::to_string(i + 1), odd[i]}));
  }
  EXPECT_EQ(got.back(), (std::vector<std::string>{"3", "1", "/"}));
  EXPECT_EQ(rows_of("SELECT cardinality(tags), gone FROM tagged WHERE id = 2"),
            (std::vector<std::vector<std::string>>{{"0", "t"}}));
  EXPECT_EQ(rows_of("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'tagged'::regclass "
                    "AND attname = 'tags'"),
            (std::vector<std::vector<std::string>>{{"text[]"}}));
}

TEST(PostgresSink, UpsertWithDeleteWhenRemovesKeysWhoseLastRowSaysSo) {
  auto w = open_writer<Tagged>(uri("table=changelog&mode=upsert&key=id&delete_when=gone&create_table=true"));
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  commit<Tagged>(*w->w, {{1, {"a"}, false}, {2, {"b"}, false}, {3, {"c"}, false}}, 1);
  // Delete 1; update 2; delete then re-insert 3 in one batch (the last row
  // wins); delete 9, which is not there.
  commit<Tagged>(*w->w, {{1, {}, true}, {2, {"b2"}, false}, {3, {}, true}, {3, {"c2"}, false}, {9, {}, true}}, 2);
  EXPECT_EQ(rows_of("SELECT id, tags[1] FROM changelog ORDER BY id"),
            (std::vector<std::vector<std::string>>{{"2", "b2"}, {"3", "c2"}}));
  // Insert then delete in one batch: gone.
  commit<Tagged>(*w->w, {{4, {"d"}, false}, {4, {}, true}, {2, {}, true}}, 3);
  EXPECT_EQ(rows_of("SELECT id FROM changelog ORDER BY id"), (std::vector<std::vector<std::string>>{{"3"}}));
  EXPECT_EQ(server().scalar("SELECT count(*) FROM pg_attribute WHERE attrelid = 'changelog'::regclass AND attname = 'gone'"), 0)
      << "the delete marker is not a column";
  auto bad = PostgresSink<Tagged>::from_uri(uri("table=x&mode=upsert&key=id&delete_when=tags"));
  EXPECT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("bool field"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(PostgresSink<Tagged>::from_uri(uri("table=x&delete_when=gone")).is_ok()) << "append mode cannot delete";
}

TEST(PostgresSink, QuotesIdentifiers) {
  auto w = open_writer<Odd>(uri("table=Weird%20%22Table%22&mode=upsert&key=select&create_table=true"));
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  commit<Odd>(*w->w, {{1, "x"}}, 1);
  EXPECT_EQ(server().scalar("SELECT \"select\" FROM \"Weird \"\"Table\"\"\" WHERE \"Mixed\" = 'x'"), 1);
}

TEST(PostgresSink, AMissingTableIsAnErrorAtOpenUnlessCreateTable) {
  auto w = open_writer<Row>(uri("table=nope"));
  ASSERT_FALSE(w.is_ok());
  EXPECT_NE(w.status().message().find("\"nope\""), std::string::npos) << w.status().message();
  EXPECT_NE(w.status().message().find("create_table=true"), std::string::npos) << w.status().message();
}

TEST(PostgresSink, ASchemaMismatchIsAClearErrorAtOpen) {
  server().sql("CREATE TABLE mismatch (id integer, other text NOT NULL, extra text)");
  auto w = open_writer<Row>(uri("table=mismatch&create_table=true"));
  ASSERT_FALSE(w.is_ok());
  const std::string& m = w.status().message();
  EXPECT_EQ(w.status().code(), StatusCode::kFailedPrecondition) << m;
  EXPECT_NE(m.find("column \"id\" is integer, the record's field needs bigint"), std::string::npos) << m;
  EXPECT_NE(m.find("column \"note\" is missing"), std::string::npos) << m;
  EXPECT_NE(m.find("column \"other\" is NOT NULL without a default"), std::string::npos) << m;
  EXPECT_EQ(m.find("\"extra\""), std::string::npos) << "a nullable extra column is fine: " << m;
}

TEST(PostgresSink, UpsertNeedsAUniqueIndexOnTheKey) {
  server().sql("CREATE TABLE nokey (id bigint, note text)");
  auto w = open_writer<Row>(uri("table=nokey&mode=upsert&key=id"));
  ASSERT_FALSE(w.is_ok());
  EXPECT_NE(w.status().message().find("primary key or unique index on exactly (\"id\")"), std::string::npos)
      << w.status().message();
  server().sql("CREATE UNIQUE INDEX ON nokey (id)");
  auto ok = open_writer<Row>(uri("table=nokey&mode=upsert&key=id"));
  EXPECT_TRUE(ok.is_ok()) << ok.status().message();
}

TEST(PostgresSink, UriErrorsAreClearAndNeverEchoAPassword) {
  auto bad_type = PostgresSink<Nested>::from_uri(uri("table=t"));
  ASSERT_FALSE(bad_type.is_ok());
  EXPECT_NE(bad_type.status().message().find("list ("), std::string::npos) << bad_type.status().message();

  auto pw = PostgresSink<Row>::from_uri("postgres://u:hunter2secret@localhost:5432/db?table=t");
  ASSERT_FALSE(pw.is_ok());
  EXPECT_EQ(pw.status().message().find("hunter2secret"), std::string::npos) << pw.status().message();
  EXPECT_NE(pw.status().message().find("PGPASSWORD"), std::string::npos);
  auto pw2 = PostgresSink<Row>::from_uri("postgres://u@localhost/db?table=t&password=hunter2secret");
  ASSERT_FALSE(pw2.is_ok());
  EXPECT_EQ(pw2.status().message().find("hunter2secret"), std::string::npos) << pw2.status().message();

  for (std::string params : {"", "table=t&mode=merge", "table=t&mode=upsert", "table=t&mode=upsert&key=missing",
                             "table=t&key=id", "table=t&frobnicate=1", "table=t&create_table=yes"}) {
    auto r = PostgresSink<Row>::from_uri("postgres://u@h:1/db?" + params);
    EXPECT_FALSE(r.is_ok()) << params;
  }
  auto ok = PostgresSink<Row>::from_uri("postgres://sluice@127.0.0.1:5432/sluice?table=t&mode=upsert&key=id&create_table=true");
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  EXPECT_EQ((*ok)->config().connect.at("host"), "127.0.0.1");
  EXPECT_EQ((*ok)->config().connect.at("port"), "5432");
  EXPECT_EQ((*ok)->config().connect.at("user"), "sluice");
  EXPECT_EQ((*ok)->config().connect.at("dbname"), "sluice");
}

TEST(PostgresSink, PasswordComesFromAFileOrPgpasswordAndIsNeverInErrors) {
  const std::string secret = "S3cret-Pw-Zq81";
  create_role("pw_user", secret);
  const std::string base =
      "postgres://pw_user@127.0.0.1:" + std::to_string(server().port()) + "/sluice?table=pw_rows&create_table=true";
  const std::string file = server().dir() + "/pw";
  std::ofstream(file) << secret << "\n";
  auto w = open_writer<Row>(base + "&password_file=" + file);
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  commit<Row>(*w->w, {{1, "x"}}, 1);

  ::setenv("PGPASSWORD", secret.c_str(), 1);
  auto w2 = open_writer<Row>(base + "&sink_id=second");
  ::unsetenv("PGPASSWORD");
  ASSERT_TRUE(w2.is_ok()) << w2.status().message();

  std::ofstream(file, std::ios::trunc) << "wrong-" << secret << "\n";
  auto bad = open_writer<Row>(base + "&password_file=" + file);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("password authentication failed"), std::string::npos)
      << bad.status().message();
  EXPECT_EQ(bad.status().message().find(secret), std::string::npos) << bad.status().message();
}

TEST(PostgresSink, TextPostgresCannotHoldBecomesADeadLetter) {
  auto w = open_writer<Row>(uri("table=dl_rows&create_table=true"));
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  commit<Row>(*w->w, {{1, "ok"}, {2, std::string("nul\0byte", 8)}, {3, "bad \xff utf8"}, {4, "ok"}}, 1);
  EXPECT_EQ(server().scalar("SELECT count(*) FROM dl_rows"), 2);
  ASSERT_EQ(w->ctx->dead_letters.size(), 2u);
  EXPECT_NE(w->ctx->dead_letters[0].reason.find("NUL"), std::string::npos);
  EXPECT_NE(w->ctx->dead_letters[1].reason.find("UTF-8"), std::string::npos);
}

TEST(PostgresSink, WithoutCheckpointingCommitsInBatchesAndAtTheEnd) {
  auto w = open_writer<Row>(uri("table=alo&create_table=true&batch_rows=100"), 0, 1, /*checkpointing=*/false);
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  for (int i = 0; i < 250; ++i) ASSERT_TRUE(w->w->write(Row{i, "x"}, EventTime::min()).is_ok());
  EXPECT_EQ(server().scalar("SELECT count(*) FROM alo"), 200);
  ASSERT_TRUE(w->w->flush().is_ok());
  EXPECT_EQ(server().scalar("SELECT count(*) FROM alo"), 250);
}

TEST(PostgresSink, ServerRestartedMidRunIsRetriedWithNoLossWhileCheckpointsGoOn) {
  auto w = open_writer<Row>(uri("table=restart_rows&create_table=true&retry_timeout=30s"));
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  auto& core = static_cast<PostgresSinkWriter<Row>&>(*w->w).core();
  std::vector<Row> a, b, c;
  for (int i = 0; i < 100; ++i) a.push_back({i, "a"});
  for (int i = 100; i < 200; ++i) b.push_back({i, "b"});
  for (int i = 200; i < 250; ++i) c.push_back({i, "c"});
  commit<Row>(*w->w, a, 1);
  for (const auto& r : b) ASSERT_TRUE(w->w->write(r, EventTime::min()).is_ok());
  ASSERT_TRUE(w->w->snapshot_state(CheckpointId(2)).is_ok());
  // The server goes away (crash). The commit of checkpoint 2 fails and is
  // left to a retry timer: the task thread does not wait.
  ASSERT_TRUE(server().stop(/*immediate=*/true));
  auto t0 = std::chrono::steady_clock::now();
  Status st = w->w->notify_checkpoint_complete(CheckpointId(2));
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
  EXPECT_TRUE(core.retrying());
  // Records and barriers go on: checkpoint 3 holds both uncommitted batches.
  for (const auto& r : c) ASSERT_TRUE(w->w->write(r, EventTime::min()).is_ok());
  auto snap3 = w->w->snapshot_state(CheckpointId(3));
  ASSERT_TRUE(snap3.is_ok());
  std::vector<PgBatch> held;
  ASSERT_TRUE(deserialize(*snap3, held).is_ok());
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].checkpoint, 2);
  EXPECT_EQ(held[1].checkpoint, 3);
  // Back 1.5 s later; the task's timers (here: the context's) retry.
  std::thread restarter([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    server().start_again();
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (core.retrying() && std::chrono::steady_clock::now() < deadline) (void)w->ctx->mailbox().yield();
  restarter.join();
  ASSERT_FALSE(core.retrying());
  ASSERT_TRUE(w->ctx->failure.is_ok()) << w->ctx->failure.message();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
  EXPECT_EQ(server().scalar("SELECT count(*) FROM restart_rows"), 200);
  ASSERT_TRUE(w->w->notify_checkpoint_complete(CheckpointId(3)).is_ok());
  EXPECT_EQ(server().scalar("SELECT count(DISTINCT id) FROM restart_rows"), 250);
  EXPECT_EQ(server().scalar("SELECT count(*) FROM restart_rows"), 250);
  // The retries were counted.
  bool counted = false;
  for (const auto& f : metrics::registry().Collect()) {
    if (f.name != "sluice_postgres_sink_retries_total") continue;
    for (const auto& m : f.metric)
      for (const auto& l : m.label)
        if (l.name == "table" && l.value == "restart_rows" && m.counter.value > 0) counted = true;
  }
  EXPECT_TRUE(counted);
}

TEST(PostgresSink, WithoutCheckpointingABatchWaitsForTheServerWithTheInputSuspended) {
  auto w = open_writer<Row>(uri("table=alo_restart&create_table=true&batch_rows=50&retry_timeout=30s"), 0, 1,
                            /*checkpointing=*/false);
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  auto& core = static_cast<PostgresSinkWriter<Row>&>(*w->w).core();
  ASSERT_TRUE(server().stop(/*immediate=*/true));
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(w->w->write(Row{i, "x"}, EventTime::min()).is_ok());
  EXPECT_TRUE(core.retrying());
  EXPECT_TRUE(w->ctx->mailbox().input_suspended()) << "at-least-once holds one batch: the input must wait";
  ASSERT_TRUE(server().start_again());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (core.retrying() && std::chrono::steady_clock::now() < deadline) (void)w->ctx->mailbox().yield();
  EXPECT_FALSE(w->ctx->mailbox().input_suspended());
  EXPECT_EQ(server().scalar("SELECT count(*) FROM alo_restart"), 50);
}

TEST(PostgresSink, GivesUpAfterRetryTimeoutSoTheJobRestartsFromItsCheckpoint) {
  auto w = open_writer<Row>("postgres://postgres@127.0.0.1:1/sluice?table=x&retry_timeout=1s");
  ASSERT_FALSE(w.is_ok());
  EXPECT_EQ(w.status().code(), StatusCode::kUnavailable) << w.status().message();
  EXPECT_NE(w.status().message().find("retry_timeout"), std::string::npos) << w.status().message();
}

TEST(PostgresSinkBench, RowsPerSecond) {
  const int n = std::getenv("SLUICE_PG_BENCH_ROWS") ? std::atoi(std::getenv("SLUICE_PG_BENCH_ROWS")) : 200000;
  for (std::string mode : {"append", "upsert"}) {
    std::string params = "table=bench_" + mode + "&create_table=true&mode=" + mode;
    if (mode == "upsert") params += "&key=window_start,page_url";
    auto w = open_writer<PageCount>(uri(params));
    ASSERT_TRUE(w.is_ok()) << w.status().message();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      PageCount r{(i / 1000) * 60000, (i / 1000) * 60000 + 60000, "/page/" + std::to_string(i % 1000), i};
      ASSERT_TRUE(w->w->write(r, EventTime::min()).is_ok());
    }
    ASSERT_TRUE(w->w->snapshot_state(CheckpointId(1)).is_ok());
    auto t1 = std::chrono::steady_clock::now();
    ASSERT_TRUE(w->w->notify_checkpoint_complete(CheckpointId(1)).is_ok());
    auto t2 = std::chrono::steady_clock::now();
    double commit_s = std::chrono::duration<double>(t2 - t1).count();
    double total_s = std::chrono::duration<double>(t2 - t0).count();
    std::cerr << "[bench] " << mode << ": " << n << " rows, commit " << static_cast<int64_t>(n / commit_s)
              << " rows/s, encode+commit " << static_cast<int64_t>(n / total_s) << " rows/s" << std::endl;
    EXPECT_EQ(server().scalar("SELECT count(*) FROM bench_" + mode), n);
  }
}

}  // namespace
}  // namespace sluice::postgres::testing
