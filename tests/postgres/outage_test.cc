// A Postgres outage in a running job: the exactly-once sink retries its
// commit from a timer instead of sleeping on the task thread, so the task
// that hosts it (here chained with the source and an operator ticking on a
// processing-time timer) keeps taking checkpoints and firing timers while
// the server is down, and the table ends up with every row of the last
// completed checkpoint exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "tests/postgres/test_env.h"
#include "tests/runtime/test_job.h"

namespace sluice::postgres::testing {
namespace {

using rt_test::ReaderCtx;
using rt_test::Step;
using rt_test::TestJob;

/// Passes rows through; counts its own processing-time ticks (every 20 ms).
class Ticker final : public runtime::OneInputOperator<Row> {
 public:
  explicit Ticker(std::shared_ptr<std::atomic<int>> ticks) : ticks_(std::move(ticks)) {}
  Status open() override {
    out_ = static_cast<runtime::Output<Row>*>(outputs().at(0));
    tick();
    return Status::ok();
  }
  void process_element(const Row& r, EventTime ts) override { out_->collect(r, ts); }

 private:
  void tick() {
    auto& pts = context().processing_time();
    pts.schedule(pts.now_ms() + 20, [this](int64_t) {
      ++*ticks_;
      tick();
    });
  }
  std::shared_ptr<std::atomic<int>> ticks_;
  runtime::Output<Row>* out_ = nullptr;
};

int64_t completed(TestJob& job) {
  auto* c = job.executor().coordinator();
  return c ? c->stats().completed : 0;
}

TEST(PostgresOutage, CheckpointsAndTimersKeepFlowingWhileTheServerIsDownAndNothingIsLost) {
  std::string dir = std::filesystem::temp_directory_path().string() + "/sluice-pg-outage-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  auto sink = PostgresSink<Row>::from_uri(uri("table=outage_rows&create_table=true&retry_timeout=60s"));
  ASSERT_TRUE(sink.is_ok()) << sink.status().message();
  auto ticks = std::make_shared<std::atomic<int>>(0);
  TestJob job("pg-outage");
  auto& env = job.env();
  env.config().set("checkpoint.dir", dir);
  env.config().set("checkpoint.interval", "100ms");
  // About 2,000 rows a second, forever.
  auto rows = [](ReaderCtx& c) {
    if (c.phase++ % 2 == 0) return Step<Row>::nothing();
    return Step<Row>::record(Row{c.seq, "r"});
  };
  auto stats = std::make_shared<rt_test::SourceStats>();
  env.from_source<Row>(std::make_shared<rt_test::ScriptedSource<Row>>(rows, 1, stats),
                       runtime::WatermarkStrategy<Row>::no_watermarks(), "rows")
      .add_one_input<Row>("ticker", "ticker", [ticks] { return std::make_unique<Ticker>(ticks); })
      .sink_to(*sink, "postgres");
  ASSERT_TRUE(job.prepare(1).is_ok());
  job.start();

  auto wait_for = [](const std::function<bool()>& cond) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!cond() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return cond();
  };
  ASSERT_TRUE(wait_for([&] { return completed(job) >= 3; }));
  ASSERT_TRUE(server().stop(/*immediate=*/true));
  // Commits of the checkpoints completed from now on fail and are retried.
  const int64_t completed_at_stop = completed(job);
  const int ticks_at_stop = ticks->load();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const int64_t completed_during = completed(job) - completed_at_stop;
  const int ticks_during = ticks->load() - ticks_at_stop;
  const int64_t emitted_before_restart = stats->emitted.load();
  ASSERT_TRUE(server().start_again());
  EXPECT_GE(completed_during, 4) << "checkpoints stalled while the server was down";
  EXPECT_GE(ticks_during, 20) << "timers stalled while the server was down";
  EXPECT_FALSE(job.wait(std::chrono::milliseconds(1))) << "the job ended: " << job.result().to_string();

  // Back up: the held batches are committed, then new ones as usual.
  // Checkpoints are triggered one at a time with ids 1, 2, ...: this id is
  // triggered after the restart, so its batch comes after every row
  // emitted before it.
  auto* coordinator = job.executor().coordinator();
  ASSERT_NE(coordinator, nullptr);
  const int64_t target = coordinator->stats().completed + coordinator->stats().failed + 2;
  ASSERT_TRUE(wait_for([&] {
    return server().scalar("SELECT count(*) FROM outage_rows") > 0 &&
           server().scalar("SELECT coalesce(max(checkpoint), 0) FROM sluice_sink_progress WHERE sink_id LIKE "
                           "'pg-outage/%'") >= target;
  }));
  job.executor().cancel();
  ASSERT_TRUE(job.wait());
  // Exactly once: ids 0..n-1, none twice, none missing.
  const int64_t n = server().scalar("SELECT count(*) FROM outage_rows");
  EXPECT_EQ(server().scalar("SELECT count(DISTINCT id) FROM outage_rows"), n);
  EXPECT_EQ(server().scalar("SELECT max(id) + 1 FROM outage_rows"), n);
  EXPECT_GE(n, emitted_before_restart) << "rows written during the outage were not committed";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::postgres::testing
