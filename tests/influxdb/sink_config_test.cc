// The sink's URI and its mapping onto record fields, checked when the job
// is built: what is accepted, and errors that say what to fix. Then the
// points records become, and the dead-letter reasons of those that
// cannot be written.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>

#include "connectors/connectors.h"
#include "connectors/influxdb/influxdb_sink.h"
#include "tests/influxdb/test_context.h"

namespace sluice::influxdb {
namespace {

struct Count {
  int64_t window_start = 0;
  int64_t window_end = 0;
  std::string page_url;
  int64_t count = 0;
  SLUICE_FIELDS(window_start, window_end, page_url, count)
};

struct Mixed {
  std::string host;
  std::optional<std::string> region;
  int32_t code = 0;
  std::optional<double> ratio;
  bool ok = false;
  uint64_t big = 0;
  std::string note;
  int64_t ts = 0;
  std::vector<int> list;
  SLUICE_FIELDS(host, region, code, ratio, ok, big, note, ts, list)
};

std::string error_of(const std::string& uri) {
  auto c = parse_sink_uri(uri);
  return c.is_ok() ? std::string("(accepted)") : c.status().message();
}

template <class T>
std::string build_error(const std::string& uri) {
  auto s = InfluxDbSink<T>::from_uri(uri);
  return s.is_ok() ? std::string("(accepted)") : s.status().message();
}

TEST(InfluxSinkUri, OneXUriWithEveryPart) {
  auto c = parse_sink_uri(
      "influxdb://writer@db.example:8087/metrics%20db?measurement=page_counts&tags=page_url&fields=count"
      "&time=window_start&precision=s&rp=week&batch_points=100&batch_bytes=64kb&gzip=false&timeout=2s"
      "&retry_timeout=5m&password_file=/run/pw&max_pending_bytes=1mb&flush_interval=250ms");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->api, ApiVersion::kV1);
  EXPECT_EQ(c->host, "db.example");
  EXPECT_EQ(c->port, 8087);
  EXPECT_EQ(c->database, "metrics db");
  EXPECT_EQ(c->user, "writer");
  EXPECT_EQ(c->tags, std::vector<std::string>{"page_url"});
  EXPECT_EQ(c->fields, std::vector<std::string>{"count"});
  EXPECT_EQ(c->precision, Precision::kSeconds);
  EXPECT_EQ(c->batch_points, 100);
  EXPECT_EQ(c->batch_bytes, 64 * 1024);
  EXPECT_FALSE(c->gzip);
  EXPECT_EQ(c->retry_timeout, std::chrono::minutes(5));
  EXPECT_EQ(c->flush_interval, std::chrono::milliseconds(250));
  EXPECT_EQ(c->write_url(), "http://db.example:8087/write?db=metrics%20db&rp=week&precision=s");
}

TEST(InfluxSinkUri, TwoXUriAndDefaults) {
  auto c = parse_sink_uri("influxdb://[::1]:9999?org=acme&bucket=clicks/raw&measurement=m&tls=true");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->api, ApiVersion::kV2);
  EXPECT_EQ(c->write_url(), "https://[::1]:9999/api/v2/write?org=acme&bucket=clicks%2Fraw&precision=ms");
  EXPECT_EQ(c->token_env, "INFLUX_TOKEN");
  auto d = parse_sink_uri("influxdb://localhost/db?measurement=m");
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->port, 8086);
  EXPECT_EQ(d->batch_points, 5000);
  EXPECT_TRUE(d->gzip);
  EXPECT_EQ(d->password_env, "INFLUX_PASSWORD");
}

TEST(InfluxSinkUri, ErrorsSayWhatToFix) {
  EXPECT_NE(error_of("influxdb://h:1/db").find("measurement= is required"), std::string::npos);
  EXPECT_NE(error_of("influxdb://h:1?measurement=m").find("no database: put it in the path"), std::string::npos);
  EXPECT_NE(error_of("influxdb://h:1/db?measurement=m&precision=m").find("precision must be ns, us, ms or s"),
            std::string::npos);
  EXPECT_NE(error_of("influxdb://h:99999/db?measurement=m").find("port '99999'"), std::string::npos);
  EXPECT_NE(error_of("influxdb://:1/db?measurement=m").find("no host"), std::string::npos);
  std::string unknown = error_of("influxdb://h:1/db?measurement=m&tag=page");
  EXPECT_NE(unknown.find("unknown parameter 'tag'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("tags"), std::string::npos) << unknown;  // lists the known ones
  EXPECT_NE(error_of("influxdb://h:1/db?measurement=m&batch_points=0").find("batch_points must be a positive"),
            std::string::npos);
  EXPECT_NE(error_of("influxdb://h:1/db?measurement=m&timeout=soon").find("timeout must be a positive duration"),
            std::string::npos);
  EXPECT_NE(error_of("influxdb://h:1/db?measurement=%23m").find("must not start with '#'"), std::string::npos);
  EXPECT_NE(error_of("influxdb://h:1/db?org=o&bucket=b&measurement=m").find("not both"), std::string::npos);
  EXPECT_NE(error_of("influxdb://h:1?bucket=b&measurement=m").find("needs both org= and bucket="), std::string::npos);
  EXPECT_NE(error_of("influxdb://h:1/db?measurement=m&token_file=/t").find("2.x API"), std::string::npos);
  EXPECT_NE(error_of("influxdb://h:1/db?measurement=m&password_file=/p").find("needs a user"), std::string::npos);
  EXPECT_NE(error_of("influxdb://h:1/db?measurement=m&gzip=yes").find("gzip must be true or false"),
            std::string::npos);
  EXPECT_NE(error_of("influxdb://h:1/db?measurement=m&ca_file=/ca").find("needs tls=true"), std::string::npos);
  EXPECT_NE(error_of("influxdb://h:1/db?measurement=m&tags=%zz").find("bad percent-encoding"), std::string::npos);
  EXPECT_NE(error_of("kafka://h:1/t").find("not an influxdb:// URI"), std::string::npos);
}

TEST(InfluxSinkUri, SecretsInTheUriAreRefusedWithoutBeingEchoed) {
  for (const std::string uri : {"influxdb://u:S3cr3t-pw@h:1/db?measurement=m",
                                "influxdb://u@h:1/db?measurement=m&password=S3cr3t-pw",
                                "influxdb://h:1?org=o&bucket=b&measurement=m&token=S3cr3t-pw"}) {
    std::string e = error_of(uri);
    EXPECT_NE(e, "(accepted)") << uri;
    EXPECT_EQ(e.find("S3cr3t-pw"), std::string::npos) << e;
    EXPECT_NE(e.find("file"), std::string::npos) << e;  // says where the secret goes instead
  }
}

TEST(InfluxSinkLayout, ChecksTagsFieldsAndTimeAgainstTheRecord) {
  EXPECT_EQ(build_error<Count>("influxdb://h:1/db?measurement=pc&tags=page_url&fields=count&time=window_start"),
            "(accepted)");
  std::string e = build_error<Count>("influxdb://h:1/db?measurement=pc&tags=page");
  EXPECT_NE(e.find("'page' is not a field of the record"), std::string::npos) << e;
  EXPECT_NE(e.find("(fields: window_start (int64), window_end (int64), page_url (string), count (int64))"),
            std::string::npos)
      << e;  // lists the fields with their types
  e = build_error<Count>("influxdb://h:1/db?measurement=pc&tags=page_url&fields=page_url,count");
  EXPECT_NE(e.find("named twice"), std::string::npos) << e;
  e = build_error<Count>("influxdb://h:1/db?measurement=pc&time=page_url");
  EXPECT_NE(e.find("must be an integer count of ms since the epoch"), std::string::npos) << e;
  e = build_error<Count>("influxdb://h:1/db?measurement=pc&tags=window_start,window_end,page_url&time=count");
  EXPECT_NE(e.find("at least one field"), std::string::npos) << e;
  e = build_error<Mixed>("influxdb://h:1/db?measurement=m&tags=host");
  EXPECT_NE(e.find("'list' is std::vector<int>"), std::string::npos) << e;
  EXPECT_NE(e.find("list the fields to write with fields="), std::string::npos) << e;
  e = build_error<Mixed>("influxdb://h:1/db?measurement=m&fields=list");
  EXPECT_NE(e.find("fields are integers, floats, strings or bool"), std::string::npos) << e;
  e = build_error<int>("influxdb://h:1/db?measurement=m");
  EXPECT_NE(e.find("SLUICE_FIELDS"), std::string::npos) << e;
  // Through the job-facing dispatcher too.
  auto r = connectors::sink_from_uri<Count>("influxdb://h:1/db?measurement=pc&tags=nope");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("'nope' is not a field"), std::string::npos);
}

struct TimeRec {
  std::string time;
  int64_t value = 0;
  SLUICE_FIELDS(time, value)
};

TEST(InfluxSinkLayout, AFieldNamedTimeMustBeTheTimestampOrLeftOut) {
  std::string e = build_error<TimeRec>("influxdb://h:1/db?measurement=m");
  EXPECT_NE(e.find("reserves for the timestamp"), std::string::npos) << e;
  EXPECT_EQ(build_error<TimeRec>("influxdb://h:1/db?measurement=m&fields=value"), "(accepted)");
  e = build_error<TimeRec>("influxdb://h:1/db?measurement=m&tags=time&fields=value");
  EXPECT_NE(e.find("reserves"), std::string::npos) << e;
}

/// A writer that is never opened: encode() only.
template <class T>
std::unique_ptr<InfluxDbSinkWriter<T>> encoder(const std::string& uri) {
  auto s = InfluxDbSink<T>::from_uri(uri);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  auto w = (*s)->create_writer();
  return std::unique_ptr<InfluxDbSinkWriter<T>>(static_cast<InfluxDbSinkWriter<T>*>(w.release()));
}

TEST(InfluxSinkEncoding, RecordsBecomeLinesWithTagsSortedByKey) {
  auto w = encoder<Mixed>("influxdb://h:1/db?measurement=http%20reqs&tags=region,host&fields=code,ratio,ok,big,note"
                          "&time=ts&precision=ms");
  Mixed m{"web 1", "eu,west", 200, 0.25, true, 7, "said \"ok\"", 1700000000123, {}};
  ASSERT_TRUE(w->encode(m, EventTime(5))) << w->problem();
  EXPECT_EQ(w->line(),
            "http\\ reqs,host=web\\ 1,region=eu\\,west code=200i,ratio=0.25,ok=true,big=7i,note=\"said \\\"ok\\\"\" "
            "1700000000123\n");
}

TEST(InfluxSinkEncoding, EventTimeIsTheTimestampWithoutATimeField) {
  auto w = encoder<Count>("influxdb://h:1/db?measurement=pc&tags=page_url&precision=us");
  ASSERT_TRUE(w->encode(Count{0, 60000, "/p/1", 3}, EventTime(59999)));
  EXPECT_EQ(w->line(), "pc,page_url=/p/1 window_start=0i,window_end=60000i,count=3i 59999000\n");
  EXPECT_FALSE(w->encode(Count{0, 60000, "/p/1", 3}, EventTime::min()));
  EXPECT_NE(w->problem().find("no event time"), std::string::npos);
}

TEST(InfluxSinkEncoding, RecordsThatCannotBeWrittenGetAReason) {
  auto w = encoder<Mixed>("influxdb://h:1/db?measurement=m&tags=host,region&fields=code,ratio,big,note&time=ts");
  auto problem = [&](Mixed m) {
    EXPECT_FALSE(w->encode(m, EventTime(1)));
    return w->problem();
  };
  Mixed good{"h", "r", 1, 0.5, true, 1, "n", 1000, {}};
  ASSERT_TRUE(w->encode(good, EventTime(1))) << w->problem();
  Mixed m = good;
  m.region.reset();
  EXPECT_EQ(problem(m), "tag 'region' is missing (null)");
  m = good;
  m.ratio.reset();
  EXPECT_EQ(problem(m), "field 'ratio' is missing (null)");
  m = good;
  m.host = "";
  EXPECT_EQ(problem(m), "tag 'host' is empty (InfluxDB stores no empty tag value)");
  m = good;
  m.host = "C:\\";
  EXPECT_NE(problem(m).find("tag 'host' ends with a backslash"), std::string::npos);
  m = good;
  m.ratio = std::nan("");
  EXPECT_NE(problem(m).find("field 'ratio' is not a finite number"), std::string::npos);
  m = good;
  m.big = std::numeric_limits<uint64_t>::max();
  EXPECT_NE(problem(m).find("above InfluxDB's largest integer"), std::string::npos);
  m = good;
  m.note = std::string("\xff\xfe");
  EXPECT_EQ(problem(m), "field 'note' is not valid UTF-8");
  m = good;
  m.ts = 9223372036855;  // ms: after 2262-04-11
  EXPECT_NE(problem(m).find("outside the range InfluxDB stores"), std::string::npos);
}

TEST(InfluxSinkEncoding, BadRecordsGoToTheDeadLetterOutputWithReasonAndPayload) {
  // An address nothing listens on: the record never gets that far.
  auto w = testing::open_writer<Count>("influxdb://127.0.0.1:9/db?measurement=pc&tags=page_url&time=window_start");
  ASSERT_TRUE(w.writer);
  ASSERT_TRUE(w.writer->write(Count{0, 1, "", 5}, EventTime(0)).is_ok());
  ASSERT_TRUE(w.writer->write(Count{0, 1, "/ok", 5}, EventTime(0)).is_ok());
  ASSERT_EQ(w.ctx->dead_letters.size(), 1u);
  const DeadLetter& dl = w.ctx->dead_letters[0];
  EXPECT_EQ(dl.reason, "influxdb sink: tag 'page_url' is empty (InfluxDB stores no empty tag value)");
  EXPECT_NE(dl.origin.find("influxdb sink influxdb://127.0.0.1:9/db"), std::string::npos);
  EXPECT_EQ(dl.payload, R"({"window_start":0,"window_end":1,"page_url":"","count":5})");
  EXPECT_EQ(w.core().pending_points(), 1u);
}

}  // namespace
}  // namespace sluice::influxdb
