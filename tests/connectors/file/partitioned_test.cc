// The partitioned file sink: Hive folders from record fields, NDJSON and
// CSV, zstd, rolling by size and age, files published only when their
// checkpoint completes, recovery that publishes exactly what a checkpoint
// covered (cut back, leftovers deleted), and the file source reading the
// layout back (recursively, .zst transparently).
#include "connectors/file/partitioned.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "connectors/file/ndjson.h"
#include "connectors/file/zstd_stream.h"
#include "tests/connectors/file/lake_support.h"
#include "tests/connectors/file/temp_dir.h"
#include "tests/harness/operator_harness.h"
#include "tests/runtime/test_job.h"

namespace sluice::file {
namespace {

namespace fs = std::filesystem;
using file_test::kDay0;
using file_test::TempDir;
using file_test::Visit;
using file_test::visits;
using file_test::write_with_job;

/// Published files under `dir` (recursively), hidden ones in `hidden`.
std::vector<std::string> published(const std::string& dir, std::vector<std::string>* hidden = nullptr) {
  std::vector<std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (name[0] == '.') {
      if (hidden) hidden->push_back(e.path().string());
    } else {
      out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// The bytes of a file, decompressed if it is .zst.
std::string contents(const std::string& path) {
  if (!is_zstd_path(path)) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  ZstdFileReader r;
  EXPECT_TRUE(r.open(path).is_ok());
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = r.read(buf, sizeof buf);
    EXPECT_TRUE(n.is_ok()) << n.status().to_string();
    if (!n.is_ok() || *n == 0) break;
    out.append(buf, *n);
  }
  return out;
}

/// Reads NDJSON visits back through the file source (a job on the LocalExecutor).
std::vector<Visit> read_back(const std::string& dir, int parallelism) {
  auto out = std::make_shared<rt_test::Collected<Visit>>();
  auto dead = std::make_shared<rt_test::Collected<DeadLetter>>();
  rt_test::TestJob job("read-back");
  job.env().set_dead_letter_sink(rt_test::collect_into(dead));
  job.env()
      .from_source<Visit>(std::make_shared<NdjsonFileSource<Visit>>(dir), runtime::WatermarkStrategy<Visit>::no_watermarks(),
                          "lake")
      .sink_to(rt_test::collect_into(out));
  EXPECT_TRUE(job.prepare(parallelism).is_ok());
  Status st = job.run();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_TRUE(dead->values().empty()) << dead->values().front().reason;
  auto v = out->values();
  std::sort(v.begin(), v.end());
  return v;
}

TEST(PartitionedFileSink, WritesHiveFoldersFromFieldsAndTheFileSourceReadsThemBack) {
  for (bool zstd : {false, true}) {
    SCOPED_TRACE(zstd ? "zstd" : "plain");
    TempDir dir;
    const auto in = visits(3000, 1);
    write_with_job("file://" + dir.path() + "/?partition=dt:ts:date,user:user" +
                       (zstd ? "&compression=zstd" : ""),
                   in, 2);
    std::vector<std::string> hidden;
    const auto files = published(dir.path(), &hidden);
    EXPECT_TRUE(hidden.empty()) << hidden.front();
    ASSERT_GE(files.size(), 21u);
    simdjson::dom::parser parser;
    size_t records = 0;
    for (const auto& f : files) {
      // <dir>/dt=YYYY-MM-DD/user=uN/part-<subtask>-<run>-<seq>.ndjson[.zst]
      const std::string rel = f.substr(dir.path().size() + 1);
      std::smatch m;
      ASSERT_TRUE(std::regex_match(rel, m, std::regex(std::string(R"(dt=(\d{4}-\d\d-\d\d)/user=(u\d)/part-[01]-[0-9a-f]{8}-\d+\.ndjson)") +
                                                      (zstd ? "\\.zst" : ""))))
          << rel;
      std::istringstream lines(contents(f));
      for (std::string line; std::getline(lines, line);) {
        simdjson::dom::element d;
        ASSERT_EQ(parser.parse(line).get(d), simdjson::SUCCESS) << line;
        int64_t ts = d["ts"].get_int64().value();
        EXPECT_EQ(std::string(d["user"].get_string().value()), m[2].str());
        EXPECT_EQ(format_time_partition(ts, PartitionSpec::Format::kDate), m[1].str());
        ++records;
      }
    }
    EXPECT_EQ(records, in.size());
    auto sorted = in;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(read_back(dir.path(), 3), sorted) << "the file source reads the lake back";
  }
}

TEST(PartitionedFileSink, CsvFilesHaveAHeaderAndQuoteWhatNeedsIt) {
  TempDir dir;
  std::vector<Visit> in{{1, "u1", "comma, inside", kDay0, {"/"}}, {2, "u1", "quote \"q\"", kDay0 + 1, {"/a", "/b"}},
                        {3, "u1", "plain", kDay0 + 2, {}}};
  write_with_job("file://" + dir.path() + "/?format=csv", in, 1);
  const auto files = published(dir.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(contents(files[0]),
            "id,user,note,ts,pages\n"
            "1,u1,\"comma, inside\",1796515200000,\"[\"\"/\"\"]\"\n"
            "2,u1,\"quote \"\"q\"\"\",1796515200001,\"[\"\"/a\"\",\"\"/b\"\"]\"\n"
            "3,u1,plain,1796515200002,[]\n");
}

TEST(PartitionedFileSink, PartitionValuesAreEscapedAndTimesFormattedInUtc) {
  EXPECT_EQ(escape_partition_value("a/b=c%d"), "a%2Fb%3Dc%25d");
  EXPECT_EQ(escape_partition_value(""), "__HIVE_DEFAULT_PARTITION__");
  EXPECT_EQ(escape_partition_value(".."), "%2E%2E");
  EXPECT_EQ(escape_partition_value("mobile app 2.0"), "mobile app 2.0");
  EXPECT_EQ(format_time_partition(kDay0 + 14 * 3'600'000 + 5 * 60'000, PartitionSpec::Format::kDate), "2026-12-06");
  EXPECT_EQ(format_time_partition(kDay0 + 14 * 3'600'000 + 5 * 60'000, PartitionSpec::Format::kHour), "14");
  EXPECT_EQ(format_time_partition(kDay0 + 14 * 3'600'000 + 5 * 60'000, PartitionSpec::Format::kMinute), "05");
  EXPECT_EQ(format_time_partition(kDay0, PartitionSpec::Format::kMonth), "2026-12");
}

TEST(PartitionedFileSink, BadUrisAreRefusedWithWhatToFix) {
  auto bad = [](const std::string& uri) {
    auto s = PartitionedFileSink<Visit>::from_uri(uri);
    EXPECT_FALSE(s.is_ok()) << uri;
    return s.is_ok() ? std::string() : s.status().message();
  };
  EXPECT_NE(bad("file:///tmp/x/?partition=dt:nope:date").find("no field 'nope'"), std::string::npos);
  EXPECT_NE(bad("file:///tmp/x/?partition=dt:user:date").find("integer"), std::string::npos);
  EXPECT_NE(bad("file:///tmp/x/?partition=p:pages").find("not a number, bool or string"), std::string::npos);
  EXPECT_NE(bad("file:///tmp/x/?format=parquet").find("ndjson or csv"), std::string::npos);
  EXPECT_NE(bad("file:///tmp/x/?roll=1").find("unknown parameter"), std::string::npos);
  EXPECT_NE(bad("file://relative/?format=csv").find("absolute"), std::string::npos);
  EXPECT_TRUE(PartitionedSinkConfig::matches("file:///tmp/x/"));
  EXPECT_FALSE(PartitionedSinkConfig::matches("file:///tmp/x.ndjson"));
}

// --- the checkpoint protocol, one writer driven through the operator harness ---

using SinkHarness = harness::OneInputOperatorHarness<Visit, Visit>;

harness::HarnessOptions checkpointing() {
  harness::HarnessOptions o;
  o.job_config.set("checkpoint.dir", "/tmp/unused");
  o.start_processing_time = 1'000'000;
  return o;
}

/// Checkpoint `id` completes: the commit queue publishes on its thread;
/// waits (running the mailbox, as the task would) until it is done.
Status complete(SinkHarness& h, CheckpointId id) {
  Status st = h.notify_checkpoint_complete(id);
  while (st.is_ok() && h.op().commit_in_progress() && h.failures().empty())
    if (!h.mailbox_queue().yield()) break;
  return st;
}

std::unique_ptr<runtime::StreamOperator> sink_op(const std::string& uri) {
  auto s = PartitionedFileSink<Visit>::from_uri(uri);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return std::make_unique<runtime::SinkOperator<Visit>>(*s);
}

/// Records of every published file.
std::vector<Visit> published_records(const std::string& dir) {
  simdjson::dom::parser parser;
  std::vector<Visit> out;
  for (const auto& f : published(dir)) {
    std::istringstream lines(contents(f));
    for (std::string line; std::getline(lines, line);) {
      simdjson::dom::element d;
      EXPECT_EQ(parser.parse(line).get(d), simdjson::SUCCESS) << line;
      out.push_back({d["id"].get_int64().value(), std::string(d["user"].get_string().value()),
                     std::string(d["note"].get_string().value()), d["ts"].get_int64().value(), {}});
      for (auto p : d["pages"].get_array()) out.back().pages.emplace_back(p.get_string().value());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(PartitionedFileSink, FilesAppearOnlyWhenTheirCheckpointCompletes) {
  TempDir dir;
  const std::string uri = "file://" + dir.path() + "/?partition=user:user&roll_size=2KB&roll_interval=10s";
  SinkHarness h(sink_op(uri), checkpointing());
  ASSERT_TRUE(h.open().is_ok());
  const auto in = visits(400, 2);
  for (size_t i = 0; i < 200; ++i) h.process_element(in[i], in[i].ts);
  EXPECT_TRUE(published(dir.path()).empty());
  h.snapshot(CheckpointId(1));
  EXPECT_TRUE(published(dir.path()).empty()) << "pre-committed, not published";
  ASSERT_TRUE(complete(h, CheckpointId(1)).is_ok());
  const size_t after_size_rolls = published(dir.path()).size();
  EXPECT_GT(after_size_rolls, 0u) << "files rolled by size are published with checkpoint 1";
  h.advance_processing_time(11'000);  // every open file is now too old: rolled
  EXPECT_EQ(published(dir.path()).size(), after_size_rolls) << "rolled, but waiting for the next checkpoint";
  h.snapshot(CheckpointId(2));
  ASSERT_TRUE(complete(h, CheckpointId(2)).is_ok());
  auto expected = std::vector<Visit>(in.begin(), in.begin() + 200);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(published_records(dir.path()), expected);
  EXPECT_TRUE(h.failures().empty());
}

TEST(PartitionedFileSink, RestorePublishesExactlyWhatTheCheckpointCoveredAndDeletesTheRest) {
  for (bool zstd : {false, true}) {
    SCOPED_TRACE(zstd ? "zstd" : "plain");
    TempDir dir;
    const std::string uri = "file://" + dir.path() + "/?partition=dt:ts:date&roll_size=4KB" +
                            (zstd ? "&compression=zstd" : "");
    const auto in = visits(900, 3);
    harness::OperatorSnapshot snap;
    {
      SinkHarness h(sink_op(uri), checkpointing());
      ASSERT_TRUE(h.open().is_ok());
      for (size_t i = 0; i < 300; ++i) h.process_element(in[i], in[i].ts);
      h.snapshot(CheckpointId(1));
      ASSERT_TRUE(complete(h, CheckpointId(1)).is_ok());
      for (size_t i = 300; i < 600; ++i) h.process_element(in[i], in[i].ts);
      snap = h.snapshot(CheckpointId(2));  // completes, but the notification is lost in the crash
      for (size_t i = 600; i < 750; ++i) h.process_element(in[i], in[i].ts);
      h.snapshot(CheckpointId(3));  // never completes
      for (size_t i = 750; i < 800; ++i) h.process_element(in[i], in[i].ts);
      // The process dies here: nothing is closed or flushed.
      h.op().close();
    }
    std::vector<std::string> hidden;
    published(dir.path(), &hidden);
    ASSERT_FALSE(hidden.empty());
    // Restore from checkpoint 2, then replay from record 600.
    auto r = SinkHarness::restored(sink_op(uri), checkpointing(), snap);
    ASSERT_TRUE(r->open().is_ok());
    auto expected = std::vector<Visit>(in.begin(), in.begin() + 600);
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(published_records(dir.path()), expected) << "checkpoint 2 exactly, nothing after it";
    hidden.clear();
    published(dir.path(), &hidden);
    EXPECT_TRUE(hidden.empty()) << "leftovers of the failed run are gone: " << hidden.front();
    for (size_t i = 600; i < in.size(); ++i) r->process_element(in[i], in[i].ts);
    ASSERT_TRUE(r->end_input().is_ok());
    r->snapshot(CheckpointId(4));
    ASSERT_TRUE(complete(*r, CheckpointId(4)).is_ok());
    expected = in;
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(published_records(dir.path()), expected) << "every record once";
    // Restoring again from the same checkpoint (a crash during recovery)
    // must not publish anything twice or fail.
    auto again = SinkHarness::restored(sink_op(uri), checkpointing(), snap);
    ASSERT_TRUE(again->open().is_ok());
    EXPECT_EQ(published_records(dir.path()), expected);
  }
}

size_t open_fds() {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST(PartitionedFileSink, TheBarrierLeavesTheFsyncsToTheAsynchronousPartWhichOwnsItsDescriptors) {
  TempDir dir;
  const std::string uri = "file://" + dir.path() + "/?partition=user:user&roll_size=2KB";
  const auto in = visits(400, 5);
  std::string blob;
  {
    SinkHarness h(sink_op(uri), checkpointing());
    ASSERT_TRUE(h.open().is_ok());
    for (size_t i = 0; i < 200; ++i) h.process_element(in[i], in[i].ts);
    const size_t before = open_fds();
    auto snap = h.op().snapshot_state_async(CheckpointId(1));
    ASSERT_TRUE(snap.is_ok()) << snap.status().to_string();
    ASSERT_TRUE(snap->async) << "the fsyncs are left to the asynchronous part";
    const size_t held = open_fds() - before;
    EXPECT_GT(held, 0u) << "the part holds descriptors of its own (open and rolled files)";
    // The writer goes on and closes every file before the part runs.
    for (size_t i = 200; i < 400; ++i) h.process_element(in[i], in[i].ts);
    ASSERT_TRUE(h.end_input().is_ok());
    const size_t running = open_fds();
    auto done = snap->async();
    ASSERT_TRUE(done.is_ok()) << done.status().to_string();
    EXPECT_EQ(*done, snap->state);
    EXPECT_LE(open_fds(), running - held) << "the part closes what it synced";
    blob = *done;
    EXPECT_TRUE(published(dir.path()).empty()) << "nothing is published before the checkpoint completes";
    h.op().close();
  }
  // Restored from that checkpoint: exactly the records before its barrier.
  harness::OperatorSnapshot snap;
  snap.operator_states[0] = blob;
  auto r = SinkHarness::restored(sink_op(uri), checkpointing(), snap);
  ASSERT_TRUE(r->open().is_ok());
  auto expected = std::vector<Visit>(in.begin(), in.begin() + 200);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(published_records(dir.path()), expected);
}

TEST(DeferredSync, AFailedSyncFailsItsBatchAndEveryLaterOneAndClosesTheirDescriptors) {
  TempDir dir;
  const std::string path = dir.path() + "/f";
  auto ok_fd = [&] { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644); };
  DeferredSync s;
  s.add_file(ok_fd(), path);
  s.add_dir(dir.path());
  s.add_dir(dir.path());
  const uint64_t first = s.seal();
  EXPECT_TRUE(s.sync_through(first).is_ok());
  EXPECT_FALSE(s.failed());
  // fdatasync of a pipe fails (EINVAL), as a disk error would.
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::close(pipe_fds[0]);
  s.add_file(pipe_fds[1], "a pipe");
  const uint64_t bad = s.seal();
  s.add_file(ok_fd(), path);
  const uint64_t later = s.seal();
  const size_t before = open_fds();
  Status st = s.sync_through(later);  // also syncs the batch before it
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("a pipe"), std::string::npos) << st.to_string();
  EXPECT_TRUE(s.failed());
  EXPECT_FALSE(s.sync_through(bad).is_ok()) << "the error sticks";
  EXPECT_EQ(open_fds(), before - 2) << "both batches' descriptors are closed";
  s.add_file(ok_fd(), path);
  EXPECT_FALSE(s.sync_through(s.seal()).is_ok()) << "nothing after a failed sync is trusted";
}

TEST(PartitionedFileSink, WithoutCheckpointingFilesArePublishedWhenTheyRoll) {
  TempDir dir;
  SinkHarness h(sink_op("file://" + dir.path() + "/?roll_size=1KB"), harness::HarnessOptions{});
  ASSERT_TRUE(h.open().is_ok());
  const auto in = visits(100, 4);
  for (const auto& v : in) h.process_element(v, v.ts);
  EXPECT_GT(published(dir.path()).size(), 1u);
  ASSERT_TRUE(h.end_input().is_ok());
  auto expected = in;
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(published_records(dir.path()), expected);
}

}  // namespace
}  // namespace sluice::file
