// Watermark alignment at sources: a source more than the maximum drift
// ahead of its group's lowest watermark stops reading until the others
// catch up; idle and finished sources, and sources without a watermark yet
// (an empty topic), do not hold the group back.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "engine/api/sluice.h"
#include "engine/runtime/watermark_alignment.h"
#include "tests/runtime/test_job.h"

namespace sluice::rt_test {
namespace {

using runtime::WatermarkAlignment;

TEST(WatermarkAlignment, AMemberAheadOfTheGroupMinimumByMoreThanTheDriftPauses) {
  auto& reg = WatermarkAlignment::instance();
  auto a = reg.join("job-a", "g");
  auto b = reg.join("job-a", "g");
  auto other_job = reg.join("job-b", "g");
  EXPECT_EQ(reg.members("job-a", "g"), 2u);
  EXPECT_EQ(reg.members("job-b", "g"), 1u);
  EXPECT_FALSE(a->should_pause(INT64_MIN, 100)) << "a member without a watermark never waits";
  EXPECT_EQ(a->group_min(), INT64_MAX) << "members without a watermark do not count";
  b->report(5000);
  EXPECT_EQ(a->group_min(), 5000);
  EXPECT_FALSE(b->should_pause(5000, 100)) << "nobody waits for a member without a watermark yet";
  a->report(1000);
  b->report(1100);
  other_job->report(0);  // another job's group does not count
  EXPECT_EQ(a->group_min(), 1000);
  EXPECT_FALSE(b->should_pause(1100, 100)) << "exactly the drift ahead may read";
  EXPECT_TRUE(b->should_pause(1101, 100));
  EXPECT_FALSE(a->should_pause(1000, 100)) << "the minimum never waits";
  a->exclude();  // idle or finished
  EXPECT_EQ(b->group_min(), 1100);
  b->report(5000);
  EXPECT_FALSE(b->should_pause(5000, 100)) << "alone in the group, nothing to wait for";
  a->report(1200);
  EXPECT_EQ(b->group_min(), 1200) << "a member counts again after its next report";
  EXPECT_TRUE(b->should_pause(5000, 100));
  a.reset();  // a task that is gone holds nothing back
  EXPECT_EQ(reg.members("job-a", "g"), 1u);
  b.reset();
  EXPECT_EQ(reg.members("job-a", "g"), 0u);
}

/// Records the highest event time each of two sources has read so far,
/// and the largest lead one had over the other when it read on.
struct Lead {
  std::atomic<int64_t> max_ts[2] = {INT64_MIN, INT64_MIN};
  std::atomic<int64_t> worst{0};
};

/// A bounded source of one record per poll, ts = i * step for i < n,
/// reporting to `lead` (as source `me` of two).
class SteppedSource final : public runtime::Source<Event> {
 public:
  SteppedSource(int me, int64_t n, int64_t step, std::shared_ptr<Lead> lead)
      : me_(me), n_(n), step_(step), lead_(std::move(lead)) {}
  std::string description() const override { return "stepped"; }
  bool bounded() const override { return true; }
  std::unique_ptr<runtime::SourceReader<Event>> create_reader() const override {
    return std::make_unique<Reader>(me_, n_, step_, lead_);
  }

 private:
  class Reader final : public runtime::SourceReader<Event> {
   public:
    Reader(int me, int64_t n, int64_t step, std::shared_ptr<Lead> lead)
        : me_(me), n_(n), step_(step), lead_(std::move(lead)) {}
    Status open(runtime::OperatorContext&, runtime::SourceOutput<Event>& out) override {
      out.set_split_count(1);
      return Status::ok();
    }
    Result<runtime::PollStatus> poll_next(runtime::SourceOutput<Event>& out) override {
      if (i_ >= n_) {
        out.split_finished(0);
        return runtime::PollStatus::kEndOfInput;
      }
      const int64_t mine = lead_->max_ts[me_].load();
      const int64_t other = lead_->max_ts[1 - me_].load();
      // While the other still reads, how far this one is ahead of it now that
      // it reads on — once the other has a watermark (it read its second
      // record: the first one's watermark went out before): until then it
      // does not hold this one back.
      if (mine != INT64_MIN && other >= other_step() && other < (n_other() - 1) * other_step()) {
        int64_t w = lead_->worst.load();
        while (mine - other > w && !lead_->worst.compare_exchange_weak(w, mine - other)) {
        }
      }
      Event e{"s" + std::to_string(me_), i_ * step_, i_};
      lead_->max_ts[me_].store(e.ts);
      out.collect(e, 0);
      ++i_;
      // Paced, so that both sources are reading at the same time.
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      return runtime::PollStatus::kMoreAvailable;
    }
    int64_t n_other() const { return me_ == 0 ? kN1 : kN0; }
    int64_t other_step() const { return me_ == 0 ? kStep1 : kStep0; }

   private:
    int me_;
    int64_t n_, step_, i_ = 0;
    std::shared_ptr<Lead> lead_;
  };

  int me_;
  int64_t n_, step_;
  // shared: both sources' readers report to it, the test reads it.
  std::shared_ptr<Lead> lead_;

 public:
  // Source 0 takes 10 ms of event time per record, source 1 100 ms: read at
  // the same record rate, source 1 runs ahead by up to ~45 s.
  static constexpr int64_t kN0 = 5'000, kStep0 = 10, kN1 = 500, kStep1 = 100;
};

/// Runs the two stepped sources into one sink; the largest lead seen and
/// how many records arrived.
std::pair<int64_t, size_t> run_two(std::optional<Duration> max_drift) {
  auto lead = std::make_shared<Lead>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("alignment-" + std::to_string(max_drift ? max_drift->count() : -1));
  auto& env = job.env();
  auto strategy = event_time();
  if (max_drift) strategy = strategy.with_watermark_alignment("both", *max_drift);
  auto slow = env.from_source<Event>(
      std::make_shared<SteppedSource>(0, SteppedSource::kN0, SteppedSource::kStep0, lead), strategy, "fine");
  auto fast = env.from_source<Event>(
      std::make_shared<SteppedSource>(1, SteppedSource::kN1, SteppedSource::kStep1, lead), strategy, "coarse");
  slow.union_with(fast).sink_to(collect_into(out));
  EXPECT_TRUE(job.prepare(1).is_ok());
  Status st = job.run();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return {lead->worst.load(), out->values().size()};
}

TEST(WatermarkAlignment, ASourceAheadInEventTimeWaitsForTheOtherAndEveryRecordArrives) {
  const auto [worst, n] = run_two(Duration(1000));
  EXPECT_EQ(n, static_cast<size_t>(SteppedSource::kN0 + SteppedSource::kN1));
  // A source reads on only while its watermark (max ts - 1) is within the
  // drift of the other's: its lead when it reads is at most the drift.
  EXPECT_LE(worst, 1000) << "a source read on while more than the drift ahead";
  // Without alignment the coarse source runs far ahead (shows the test can fail).
  const auto [free_worst, free_n] = run_two(std::nullopt);
  EXPECT_EQ(free_n, n);
  EXPECT_GT(free_worst, 5'000);
}

/// The key of the marker the quiet source below logs when it ends.
constexpr const char* kQuietEnded = "<quiet source ended>";

// Flink's behaviour (FLINK-32414): a source whose split never emits holds the
// watermark downstream, but does not stop the other sources of its group
// from reading (before, they all stopped and the job hung without a word).
TEST(WatermarkAlignment, ASourceThatNeverEmitsHoldsTheWatermarkButDoesNotStopTheOthersReading) {
  constexpr int64_t kN = 3'000, kStep = 10;  // 30 s of event time, far past the 1 s drift
  auto busy_done = std::make_shared<std::atomic<bool>>(false);
  auto quiet_saw_busy_done = std::make_shared<std::atomic<bool>>(false);
  auto log = std::make_shared<ProbeLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("alignment-quiet");
  auto& env = job.env();
  const auto strategy = event_time().with_watermark_alignment("g", Duration(1000));  // no idleness
  auto busy = env.from_source<Event>(
      std::make_shared<ScriptedSource<Event>>([busy_done](ReaderCtx& rc) {
        if (rc.seq == kN) {
          busy_done->store(true);
          return Step<Event>::end();
        }
        return Step<Event>::record(Event{"b", rc.seq * kStep, rc.seq});  // a watermark per poll (64)
      }),
      strategy, "busy");
  // An empty topic: its split never emits. It ends once the busy source has
  // read everything, or after 5 s (then the busy one was stopped: a failure).
  // Before it ends it writes a marker into the probe's log: everything the
  // probe logs after the marker may have been let through by that end.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto quiet = env.from_source<Event>(
      std::make_shared<ScriptedSource<Event>>([busy_done, quiet_saw_busy_done, until, log](ReaderCtx&) {
        const bool busy_finished = busy_done->load();
        if (busy_finished || std::chrono::steady_clock::now() > until) {
          quiet_saw_busy_done->store(busy_finished);
          log->add({false, 0, kQuietEnded, 0});
          return Step<Event>::end();
        }
        return Step<Event>::nothing();
      }),
      strategy, "quiet");
  probe(busy.union_with(quiet), log).sink_to(collect_into(out));
  ASSERT_TRUE(job.prepare(1).is_ok());
  Status st = job.run();
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_TRUE(quiet_saw_busy_done->load()) << "the busy source stopped reading for the one that never emitted";
  EXPECT_EQ(out->values().size(), static_cast<size_t>(kN));
  // Event time waited for the quiet source: no watermark went out before it
  // ended. After its end the busy source's watermarks still in flight (its
  // last batches, read before it saw the end) may pass: the union's minimum
  // is then the busy input's alone, as in Flink.
  bool quiet_ended = false;
  size_t watermarks = 0;
  for (const auto& e : log->entries()) {
    if (!e.is_watermark) {
      quiet_ended = quiet_ended || e.key == kQuietEnded;
      continue;
    }
    ++watermarks;
    if (!quiet_ended) ADD_FAILURE() << "watermark " << e.ts << " passed before the quiet source ended";
  }
  EXPECT_TRUE(quiet_ended);
  ASSERT_GE(watermarks, 1u) << "the end of both inputs sends the maximum watermark";
  EXPECT_EQ(log->watermarks().back(), INT64_MAX);
}

TEST(WatermarkAlignment, ASourceWithoutPositiveDriftIsRefused) {
  TestJob job("alignment-bad");
  auto& env = job.env();
  env.from_source<Event>(std::make_shared<VectorSource<Event>>(std::vector<Event>{{"k", 1, 1}}),
                         event_time().with_watermark_alignment("g", Duration(0)), "events")
      .sink_to(collect_into(std::make_shared<Collected<Event>>()));
  ASSERT_TRUE(job.prepare(1).is_ok());
  Status st = job.run();
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.to_string().find("positive maximum drift"), std::string::npos) << st.to_string();
}

}  // namespace
}  // namespace sluice::rt_test
