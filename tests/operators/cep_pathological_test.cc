// The pathological stream: one key, 1,000 pattern starts per second of
// event time, a 6-hour within and nothing that ever completes a match.
// Without a bound the key would hold 21.6 million partial matches after six
// hours; the operator keeps at most the per-key cap (10,000), sends every
// partial match it drops to the dead-letter output, and its memory stays
// flat once the cap is reached. CI runs 10 minutes of event time on the
// heap (600,000 events); the slow variant (label slow) runs an hour on the
// heap and 10 minutes on RocksDB.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "operators/cep/cep_operator.h"
#include "tests/connectors/file/temp_dir.h"
#include "tests/harness/operator_harness.h"
#include "tests/operators/cep_test_support.h"

namespace sluice::cep::testing {
namespace {

class Quiet final : public PatternProcessFunction<Ev, std::string> {
 public:
  void process_match(const Match<Ev>&, Context&, basic::Collector<std::string>& out) override { out.collect("match"); }
};

int64_t rss_kib() {
  std::ifstream f("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

void run(state::BackendKind backend, int64_t seconds) {
  constexpr int64_t kCap = 10'000;
  constexpr int64_t kStartsPerSecond = 1'000;
  file_test::TempDir dir;
  harness::HarnessOptions o = harness::HarnessOptions::keyed_subtask();
  o.backend = backend;
  o.retain_dead_letters = false;
  o.job_config.set("state.rocksdb.memory", "64mb");
  auto p = Pattern<Ev>::begin("start").where(is("s")).followed_by("end").where(is("e")).within(std::chrono::hours(6));
  auto ks = std::make_shared<const runtime::KeySelector<Ev, std::string>>(
      std::function<std::string(const Ev&)>([](const Ev& e) { return e.key; }));
  CepOptions c;
  c.max_partial_matches = kCap;
  auto* op = new CepOperator<std::string, Ev, std::string, Quiet>(ks, CompiledPattern<Ev>::compile(p), c, Quiet());
  harness::OneInputOperatorHarness<Ev, std::string> h(std::unique_ptr<runtime::StreamOperator>(op), o);
  ASSERT_TRUE(h.open().is_ok());
  const int64_t t0 = 1'700'000'000'000;
  int64_t id = 0, rss_at_cap = 0, max_live = 0;
  for (int64_t s = 0; s < seconds; ++s) {
    for (int64_t i = 0; i < kStartsPerSecond; ++i) h.process_element(Ev{++id, "s", 0, "the-key"}, t0 + s * 1000 + i);
    h.process_watermark(t0 + s * 1000 + 999);
    max_live = std::max(max_live, op->stats().partial_matches);
    ASSERT_LE(op->stats().partial_matches, kCap) << "second " << s;
    // Memory once the cap is reached and the allocator has settled.
    if (s == std::min<int64_t>(seconds / 5, 120)) rss_at_cap = rss_kib();
  }
  const int64_t rss_end = rss_kib();
  EXPECT_EQ(max_live, kCap);
  EXPECT_EQ(op->stats().partial_matches, kCap);
  EXPECT_EQ(h.dead_letter_count(), static_cast<uint64_t>(seconds * kStartsPerSecond - kCap));
  EXPECT_EQ(op->stats().dropped, static_cast<uint64_t>(seconds * kStartsPerSecond - kCap));
  EXPECT_LE(op->stats().shared_events, kCap);
  EXPECT_TRUE(h.failures().empty());
  // Flat: what was resident once the cap was reached is what stays resident
  // (allowing allocator noise), though the stream went on for much longer.
  EXPECT_LT(rss_end - rss_at_cap, 32 * 1024) << "RSS at the cap " << rss_at_cap << " KiB, at the end " << rss_end << " KiB";
  std::printf("%s: %lld s, %lld events, RSS at the cap %lld KiB, at the end %lld KiB\n",
              std::string(state::backend_kind_name(backend)).c_str(), static_cast<long long>(seconds),
              static_cast<long long>(id), static_cast<long long>(rss_at_cap), static_cast<long long>(rss_end));
}

TEST(CepPathological, OneKeyThousandStartsPerSecondStaysUnderTheCapWithFlatMemory) {
  run(state::BackendKind::kHeap, std::getenv("CEP_PATHOLOGICAL_SECONDS") ? std::atoll(std::getenv("CEP_PATHOLOGICAL_SECONDS")) : 600);
}

TEST(CepPathologicalSlow, AnHourOnTheHeapAndTenMinutesOnRocksDB) {
  if (!std::getenv("CEP_SLOW")) GTEST_SKIP() << "set CEP_SLOW=1 (ctest -L slow runs it)";
  run(state::BackendKind::kHeap, 3600);
  run(state::BackendKind::kRocksDB, 600);
}

}  // namespace
}  // namespace sluice::cep::testing
