// The file source over a data lake: the partitioned sink's layout read
// back for a time range (folders outside it never opened, records outside
// it skipped), published files only, the file list kept across a restore,
// and refusals that say what to fix.
#include "connectors/file/lake.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "connectors/file/ndjson.h"
#include "engine/common/time.h"
#include "tests/connectors/file/lake_support.h"
#include "tests/connectors/file/temp_dir.h"
#include "tests/runtime/test_job.h"

namespace sluice::file {
namespace {

namespace fs = std::filesystem;
using file_test::kDay0;
using file_test::TempDir;
using file_test::Visit;
using file_test::visits;
using file_test::write_file;
using file_test::write_with_job;

constexpr int64_t kHour = 3'600'000;
const std::string kLayout = "partition=dt:ts:date,hour:ts:hour";

struct ReadResult {
  std::vector<Visit> records;
  std::vector<DeadLetter> dead;
  Status status;
};

/// Runs a job reading `uri` into a collecting sink.
ReadResult read_lake(const std::string& uri, int parallelism) {
  ReadResult r;
  auto source = NdjsonFileSource<Visit>::from_uri(uri);
  if (!source.is_ok()) {
    r.status = source.status();
    return r;
  }
  auto out = std::make_shared<rt_test::Collected<Visit>>();
  auto dead = std::make_shared<rt_test::Collected<DeadLetter>>();
  rt_test::TestJob job("lake");
  job.env().set_dead_letter_sink(rt_test::collect_into(dead));
  job.env().from_source<Visit>(*source, runtime::WatermarkStrategy<Visit>::no_watermarks(), "lake").sink_to(
      rt_test::collect_into(out));
  EXPECT_TRUE(job.prepare(parallelism).is_ok());
  r.status = job.run();
  r.records = out->values();
  r.dead = dead->values();
  std::sort(r.records.begin(), r.records.end());
  return r;
}

std::vector<Visit> in_range(const std::vector<Visit>& in, int64_t from, int64_t to) {
  std::vector<Visit> out;
  for (const auto& v : in)
    if (v.ts >= from && v.ts < to) out.push_back(v);
  std::sort(out.begin(), out.end());
  return out;
}

std::string json_line(const Visit& v) {
  std::string s;
  JsonSerde<Visit>::write(s, v);
  return s + "\n";
}

TEST(LakeSource, ReadsExactlyTheRecordsOfATimeRangeFromTheSinksLayoutAtParallelismOneToFour) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir dir;
  const auto in = visits(4000, seed);
  write_with_job("file://" + dir.path() + "/?" + kLayout + "&compression=zstd&roll_size=4KB", in, 2);
  // What a reader must not see: a file still being written, a marker, and
  // an unreadable file in an hour outside the range (only read if the
  // folder were listed: pruning).
  const std::string in_hour = dir.path() + "/dt=2026-12-07/hour=10";
  const std::string out_hour = dir.path() + "/dt=2026-12-08/hour=23";
  fs::create_directories(in_hour);
  fs::create_directories(out_hour);
  write_file(in_hour + "/.part-9-run-1.ndjson.inprogress", json_line({-1, "u", "n", kDay0 + 34 * kHour, {}}));
  write_file(dir.path() + "/_SUCCESS", "");
  write_file(out_hour + "/part-bad.ndjson", "not json at all\n");

  std::mt19937 rng(seed);
  const int64_t from = kDay0 + 5 * kHour + static_cast<int64_t>(rng() % kHour);  // inside an hour
  const int64_t to = kDay0 + 41 * kHour + static_cast<int64_t>(rng() % kHour);
  const auto want = in_range(in, from, to);
  ASSERT_GT(want.size(), 1000u);
  for (int p = 1; p <= 4; ++p) {
    SCOPED_TRACE("parallelism " + std::to_string(p));
    auto r = read_lake("file://" + dir.path() + "/?" + kLayout + "&from=" + std::to_string(from) +
                           "&to=" + format_timestamp_ms(to),
                       p);
    ASSERT_TRUE(r.status.is_ok()) << r.status.to_string();
    EXPECT_TRUE(r.dead.empty()) << r.dead.front().origin << ": " << r.dead.front().reason;
    EXPECT_EQ(r.records, want);
  }
  // Without a range every published record, once; the bad file is read too.
  auto all = read_lake("file://" + dir.path() + "/?" + kLayout, 3);
  ASSERT_TRUE(all.status.is_ok()) << all.status.to_string();
  auto sorted = in;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(all.records, sorted);
  ASSERT_EQ(all.dead.size(), 1u);
  EXPECT_EQ(all.dead[0].origin, out_hour + "/part-bad.ndjson");
}

TEST(LakeSource, PartitionFoldersGiveTheTimeRangeTheyHold) {
  LakeSelection s;
  s.partitions = {{"dt", "ts", PartitionSpec::Format::kDate}, {"hour", "ts", PartitionSpec::Format::kHour},
                  {"user", "user", PartitionSpec::Format::kValue}};
  s.time_field = "ts";
  auto day = partition_time_range(s, {"2026-12-06"});
  ASSERT_TRUE(day.is_ok() && day->has_value());
  EXPECT_EQ(**day, std::pair(kDay0, kDay0 + 24 * kHour));
  auto hour = partition_time_range(s, {"2026-12-06", "14", "u1"});
  ASSERT_TRUE(hour.is_ok() && hour->has_value());
  EXPECT_EQ(**hour, std::pair(kDay0 + 14 * kHour, kDay0 + 15 * kHour));
  LakeSelection m;
  m.partitions = {{"month", "ts", PartitionSpec::Format::kMonth}};
  m.time_field = "ts";
  auto dec = partition_time_range(m, {"2026-12"});
  ASSERT_TRUE(dec.is_ok() && dec->has_value());
  EXPECT_EQ((*dec)->first, kDay0 - 5 * 24 * kHour);
  EXPECT_EQ((*dec)->second, kDay0 + 26 * 24 * kHour);  // 2027-01-01
  EXPECT_FALSE(partition_time_range(s, {"2026-13-01"}).is_ok());
  EXPECT_FALSE(partition_time_range(s, {"2026-12-06", "24"}).is_ok());
  s.time_field = "other";  // folders of another field do not bound it
  auto none = partition_time_range(s, {"2026-12-06", "14"});
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->has_value());
}

/// An OperatorContext for one reader outside a task.
class ReaderContext final : public runtime::OperatorContext {
 public:
  ReaderContext(int subtask, int parallelism) {
    info_.subtask = subtask;
    info_.parallelism = parallelism;
  }
  const runtime::OperatorInfo& info() const override { return info_; }
  const Configuration& job_config() const override { return config_; }
  runtime::ProcessingTimeService& processing_time() override { return pts_; }
  runtime::MailboxExecutor& mailbox() override { return mailbox_; }
  state::KeyedStateBackend* keyed_backend() override { return nullptr; }
  void dead_letter(DeadLetter) override {}
  void fail(Status) override {}
  runtime::OutputBase* side_output(std::string_view) override { return nullptr; }
  runtime::OperatorMetrics& metrics() override { return metrics_; }

 private:
  runtime::OperatorInfo info_;
  Configuration config_;
  runtime::ProcessingTimeService pts_{&SystemClock::instance()};
  runtime::QueueMailboxExecutor mailbox_;
  runtime::OperatorMetrics metrics_;
};

/// Keeps what a reader emits.
class Keep final : public runtime::SourceOutput<Visit> {
 public:
  void collect(const Visit& v, int, EventTime) override { records.push_back(v); }
  void dead_letter(DeadLetter dl) override { dead.push_back(std::move(dl)); }
  void set_split_count(int) override {}
  void split_finished(int) override {}
  std::vector<Visit> records;
  std::vector<DeadLetter> dead;
};

TEST(LakeSource, ARestoreReadsTheFilesOfTheCheckpointNotThoseAddedSince) {
  TempDir dir;
  const auto in = visits(6000, 7);
  write_with_job("file://" + dir.path() + "/?" + kLayout + "&roll_size=8KB", in, 2);
  const std::string uri = "file://" + dir.path() + "/?" + kLayout + "&from=" + std::to_string(kDay0) +
                          "&to=" + std::to_string(kDay0 + 48 * kHour);
  auto source = NdjsonFileSource<Visit>::from_uri(uri);
  ASSERT_TRUE(source.is_ok()) << source.status().to_string();

  // Two subtasks read a batch each, then a checkpoint.
  Keep before;
  runtime::OperatorRestore restore{true, 2, {}};
  for (int i = 0; i < 2; ++i) {
    ReaderContext ctx(i, 2);
    auto reader = (*source)->create_reader();
    ASSERT_TRUE(reader->open(ctx, before).is_ok());
    auto st = reader->poll_next(before);
    ASSERT_TRUE(st.is_ok()) << st.status().to_string();
    auto snap = reader->snapshot_state(CheckpointId(1));
    ASSERT_TRUE(snap.is_ok());
    restore.states.push_back(*snap);
  }
  ASSERT_FALSE(before.records.empty());
  // The lake gains a published file (and loses none) in the range.
  const std::string late_hour = dir.path() + "/dt=2026-12-06/hour=03";
  fs::create_directories(late_hour);
  write_file(late_hour + "/part-7-later-0.ndjson", json_line({-5, "late", "x", kDay0 + 3 * kHour + 1, {}}));

  // Restored at parallelism 3: the rest of the checkpoint's files, once.
  Keep after;
  for (int i = 0; i < 3; ++i) {
    ReaderContext ctx(i, 3);
    auto reader = (*source)->create_reader();
    ASSERT_TRUE(reader->restore_state(restore).is_ok());
    ASSERT_TRUE(reader->open(ctx, after).is_ok());
    for (int polls = 0; polls < 1000; ++polls) {
      auto st = reader->poll_next(after);
      ASSERT_TRUE(st.is_ok()) << st.status().to_string();
      if (*st == runtime::PollStatus::kEndOfInput) break;
    }
  }
  auto got = before.records;
  got.insert(got.end(), after.records.begin(), after.records.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, in_range(in, kDay0, kDay0 + 48 * kHour));
  EXPECT_TRUE(before.dead.empty() && after.dead.empty());
}

TEST(LakeSource, RefusesWhatItCannotReadSayingWhatToFix) {
  TempDir dir;
  write_with_job("file://" + dir.path() + "/?partition=dt:ts:date&format=csv", visits(10, 1), 1);
  auto csv = read_lake("file://" + dir.path() + "/?partition=dt:ts:date", 1);
  EXPECT_NE(csv.status.message().find("is CSV"), std::string::npos) << csv.status.to_string();

  TempDir lake;
  write_with_job("file://" + lake.path() + "/?" + kLayout, visits(10, 1), 1);
  auto wrong = read_lake("file://" + lake.path() + "/?partition=hour:ts:hour", 1);
  EXPECT_NE(wrong.status.message().find("is not a partition folder hour="), std::string::npos)
      << wrong.status.to_string();
  auto shallow = read_lake("file://" + lake.path() + "/?partition=dt:ts:date", 1);
  EXPECT_NE(shallow.status.message().find("below the last partition level"), std::string::npos)
      << shallow.status.to_string();

  struct Case {
    std::string query, expect;
  };
  for (const Case& c : {Case{"from=2026-12-06", "give partition= too"},
                        Case{kLayout + "&from=2026-12-07&to=2026-12-06", "from must be before to"},
                        Case{"partition=user:user&from=2026-12-06", "need a time field"},
                        Case{kLayout + "&from=2026-12-06&time_field=note", "is not an integer"},
                        Case{kLayout + "&from=2026-12-06&time_field=nope", "is no field"},
                        Case{kLayout + "&from=yesterday", "from:"}, Case{kLayout + "&colour=blue", "parameters are"}}) {
    auto r = NdjsonFileSource<Visit>::from_uri("file://" + lake.path() + "/?" + c.query);
    ASSERT_FALSE(r.is_ok()) << c.query;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << c.query << ": " << r.status().to_string();
  }
}

}  // namespace
}  // namespace sluice::file
