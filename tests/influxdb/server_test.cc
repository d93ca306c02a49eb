// The sink against a real influxd 1.6 (Debian's package) on loopback:
// names and values with every character line protocol escapes read back
// unchanged through InfluxQL; points the server refuses (a field type
// conflict) become dead letters with the server's reason while the rest of
// the batch is written; credentials and databases as the server checks them.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "tests/influxdb/influx_server.h"
#include "tests/influxdb/test_context.h"

namespace sluice::influxdb {
namespace {

using testing::open_writer;
using testing::InfluxServer;
using testing::shared_server;

struct Escaped {
  std::string a;
  std::string b;
  std::string text;
  double ratio = 0;
  int64_t n = 0;
  bool flag = false;
  int64_t ts = 0;
  SLUICE_FIELDS(a, b, text, ratio, n, flag, ts)
};

/// Writes `records` through a sink on `uri` (exactly-once: one checkpoint)
/// and waits until the server accepted or refused every point.
template <class T>
void write_all(const std::string& uri, const std::vector<T>& records, std::vector<DeadLetter>* dead = nullptr) {
  auto w = open_writer<T>(uri);
  ASSERT_TRUE(w.writer);
  for (const auto& r : records) ASSERT_TRUE(w.writer->write(r, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->snapshot_state(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.writer->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(w.ctx->run_until([&] { return w.core().pending_points() == 0 || !w.ctx->failures.empty(); }));
  for (const auto& f : w.ctx->failures) ADD_FAILURE() << f.to_string();
  if (dead) *dead = w.ctx->dead_letters;
}

TEST(InfluxServerRoundTrip, SpacesCommasEqualsQuotesBackslashesAndUnicodeReadBackUnchanged) {
  InfluxServer& s = shared_server();
  s.query("CREATE DATABASE esc");
  const std::vector<std::string> names = {
      "plain", "with space", "comma,here", "equals=sign", "quote\"d", "single'quote", "back\\slash", "\\,",
      "\\ x", "a\\=b", "trailing space ", " leading", "tab\there", "üñíçødé", "日本語のテキスト", "emoji 🚀",
      "=,= ,", "#hash", "\"", "multi\\\\back", "x=1,y=2 z"};
  std::vector<Escaped> recs;
  for (size_t i = 0; i < names.size(); ++i) {
    Escaped e;
    e.a = names[i];
    e.b = names[(i * 7 + 3) % names.size()];
    e.text = names[i] + "\nsecond line, \"quoted\" \\ and a trailing backslash\\";
    e.ratio = 0.1 * static_cast<double>(i) - 1.0 / 3.0;
    e.n = static_cast<int64_t>(i) * -1234567890123LL;
    e.flag = i % 2 == 0;
    e.ts = 1'700'000'000'000 + static_cast<int64_t>(i);
    recs.push_back(e);
  }
  std::vector<DeadLetter> dead;
  write_all(s.uri("esc", "measurement=esc%20m%2C1%3Dx&tags=a,b&fields=text,ratio,n,flag&time=ts"), recs, &dead);
  EXPECT_TRUE(dead.empty()) << dead[0].reason;

  auto series = s.query("SELECT * FROM \"esc m,1=x\"", "esc");
  ASSERT_EQ(series.size(), 1u);
  EXPECT_EQ(series[0].name, "esc m,1=x");
  std::map<std::string, size_t> col;
  for (size_t c = 0; c < series[0].columns.size(); ++c) col[series[0].columns[c]] = c;
  ASSERT_EQ(series[0].rows.size(), recs.size());
  for (const auto& row : series[0].rows) {
    const size_t i = std::stoull(row[col["time"]]) - 1'700'000'000'000;
    ASSERT_LT(i, recs.size());
    const Escaped& e = recs[i];
    EXPECT_EQ(row[col["a"]], e.a) << "record " << i;
    EXPECT_EQ(row[col["b"]], e.b) << "record " << i;
    EXPECT_EQ(row[col["text"]], e.text) << "record " << i;
    EXPECT_EQ(std::stod(row[col["ratio"]]), e.ratio) << "record " << i;
    EXPECT_EQ(row[col["n"]], std::to_string(e.n)) << "record " << i;
    EXPECT_EQ(row[col["flag"]], e.flag ? "true" : "false") << "record " << i;
  }
}

struct Count {
  int64_t window_start = 0;
  std::string page_url;
  int64_t count = 0;
  SLUICE_FIELDS(window_start, page_url, count)
};

TEST(InfluxServerRoundTrip, PointsTheServerRefusesAreDeadLettersAndTheRestOfTheBatchIsWritten) {
  InfluxServer& s = shared_server();
  s.query("CREATE DATABASE conflict");
  // `count` is a float in the shard of week 0; the sink writes integers.
  // Points of that week are refused (field type conflict), points two
  // months later land in another shard and are accepted.
  const int64_t t0 = 1'700'000'000'000;
  const int64_t later = t0 + 60LL * 24 * 3600 * 1000;
  ASSERT_EQ(s.write("conflict", "pc,page_url=seed count=1.5 " + std::to_string(t0)), 204);
  std::vector<Count> recs;
  std::set<std::string> refused_expected;
  for (int i = 0; i < 20; ++i) {
    bool clash = i % 2 == 0;
    recs.push_back({(clash ? t0 : later) + i * 1000, "/p/" + std::to_string(i), i});
    if (clash) refused_expected.insert("pc,page_url=/p/" + std::to_string(i) + " count=" + std::to_string(i) + "i " + std::to_string(t0 + i * 1000));
  }
  std::vector<DeadLetter> dead;
  write_all(s.uri("conflict", "measurement=pc&tags=page_url&time=window_start"), recs, &dead);
  std::set<std::string> refused;
  for (const auto& d : dead) {
    refused.insert(d.payload);
    EXPECT_NE(d.reason.find("InfluxDB refused the point (HTTP 400: partial write: field type conflict"),
              std::string::npos)
        << d.reason;
  }
  EXPECT_EQ(refused, refused_expected);
  auto series = s.query("SELECT \"count\" FROM pc WHERE time >= " + std::to_string(later) + "ms GROUP BY page_url", "conflict");
  std::set<std::string> pages;
  for (const auto& ser : series) {
    ASSERT_EQ(ser.rows.size(), 1u);
    pages.insert(ser.tags.at(0).second);
  }
  EXPECT_EQ(pages.size(), 10u);
  EXPECT_TRUE(pages.count("/p/1") && pages.count("/p/19"));
}

TEST(InfluxServerRoundTrip, CredentialsAndDatabasesAsTheServerChecksThem) {
  InfluxServer& s = shared_server();
  // create_database=true creates it (the admin may).
  write_all<Count>(s.uri("created_by_sink", "measurement=pc&tags=page_url&time=window_start&create_database=true"),
                   {{1'700'000'000'000, "/a", 1}});
  auto n = s.query("SELECT count(\"count\") FROM pc", "created_by_sink");
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].rows.at(0).at(1), "1");

  // A missing database, without create_database: the probe fails the task.
  auto missing = open_writer<Count>(s.uri("no_such_db", "measurement=pc&tags=page_url&time=window_start"));
  ASSERT_TRUE(missing.writer);
  ASSERT_TRUE(missing.ctx->run_until([&] { return !missing.ctx->failures.empty(); }));
  EXPECT_NE(missing.ctx->failures[0].message().find("database no_such_db not found (HTTP 404: database not found"),
            std::string::npos)
      << missing.ctx->failures[0].to_string();

  // A wrong password: refused at once, and the message does not show it.
  const std::string wrong = s.password_file() + ".wrong";
  std::ofstream(wrong) << "not-the-password\n";
  auto bad = open_writer<Count>("influxdb://admin@127.0.0.1:" + std::to_string(s.port()) +
                                "/esc?measurement=pc&tags=page_url&time=window_start&password_file=" + wrong);
  ASSERT_TRUE(bad.writer);
  ASSERT_TRUE(bad.ctx->run_until([&] { return !bad.ctx->failures.empty(); }));
  const std::string msg = bad.ctx->failures[0].message();
  EXPECT_NE(msg.find("refused the credentials (HTTP 401: authorization failed)"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("not-the-password"), std::string::npos);
}

}  // namespace
}  // namespace sluice::influxdb
