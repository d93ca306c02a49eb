// map / filter / flat_map driven through the operator harness.
#include "operators/basic/basic_operators.h"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/harness/operator_harness.h"

namespace sluice::basic {
namespace {

using harness::HarnessOptions;
using harness::OneInputOperatorHarness;
using harness::StreamRecord;

/// The input record of these tests.
struct Payment {
  std::string user;
  int64_t cents = 0;
  SLUICE_FIELDS(user, cents)
  bool operator==(const Payment&) const = default;
};

HarnessOptions named(std::string name) {
  HarnessOptions o;
  o.operator_name = std::move(name);
  o.job_name = "payments";
  return o;
}

template <class IN, class OUT, class F>
std::unique_ptr<OneInputOperatorHarness<IN, OUT>> map_harness(F f, HarnessOptions o = named("map")) {
  auto h = std::make_unique<OneInputOperatorHarness<IN, OUT>>(
      std::make_unique<MapOperator<IN, OUT, F>>(std::move(f)), std::move(o));
  EXPECT_TRUE(h->open().is_ok());
  return h;
}

template <class T, class F>
std::unique_ptr<OneInputOperatorHarness<T, T>> filter_harness(F f, HarnessOptions o = named("filter")) {
  auto h = std::make_unique<OneInputOperatorHarness<T, T>>(
      std::make_unique<FilterOperator<T, F>>(std::move(f)), std::move(o));
  EXPECT_TRUE(h->open().is_ok());
  return h;
}

template <class IN, class OUT, class F>
std::unique_ptr<OneInputOperatorHarness<IN, OUT>> flat_map_harness(F f,
                                                                   HarnessOptions o = named("flat_map")) {
  auto h = std::make_unique<OneInputOperatorHarness<IN, OUT>>(
      std::make_unique<FlatMapOperator<IN, OUT, F>>(std::move(f)), std::move(o));
  EXPECT_TRUE(h->open().is_ok());
  return h;
}

const std::vector<StreamRecord<Payment>> kInput{
    {{"ann", 120}, EventTime(1'000)},
    {{"bob", -5}, EventTime(700)},  // out of order: the timestamp must still be its own
    {{"cy", 0}, EventTime(2'500)},
    {{"ann", 99}, EventTime(2'501)},
};

TEST(MapOperator, EmitsEachResultWithTheInputTimestamp) {
  auto h = map_harness<Payment, int64_t>([](const Payment& p) { return p.cents * 2; });
  std::vector<StreamRecord<int64_t>> expected;
  for (const auto& r : kInput) {
    h->process_element(r.value, r.ts);
    expected.push_back({r.value.cents * 2, r.ts});
  }
  EXPECT_EQ(h->output().records(), expected);
  EXPECT_TRUE(h->dead_letters().empty());
  EXPECT_TRUE(h->failures().empty());
}

TEST(MapOperator, ForwardsWatermarksAfterTheRecordsBeforeThem) {
  auto h = map_harness<Payment, std::string>([](const Payment& p) { return p.user; });
  h->process_element(kInput[0].value, kInput[0].ts);
  h->process_watermark(1'000);
  h->process_element(kInput[1].value, kInput[1].ts);
  const auto& ev = h->output().events();
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(*ev[0].value, "ann");
  EXPECT_TRUE(ev[1].is_watermark());
  EXPECT_EQ(ev[1].ts, EventTime(1'000));
  EXPECT_EQ(*ev[2].value, "bob");
}

TEST(FilterOperator, KeepsMatchingRecordsWithTheirTimestamps) {
  auto h = filter_harness<Payment>([](const Payment& p) { return p.cents > 0; });
  std::vector<StreamRecord<Payment>> expected;
  for (const auto& r : kInput) {
    h->process_element(r.value, r.ts);
    if (r.value.cents > 0) expected.push_back(r);
  }
  ASSERT_EQ(expected.size(), 2u);
  EXPECT_EQ(h->output().records(), expected);
}

TEST(FlatMapOperator, EmitsEveryCollectedRecordWithTheInputTimestamp) {
  // One output per started euro: 0, 1 or more per input.
  auto h = flat_map_harness<Payment, std::string>([](const Payment& p, Collector<std::string>& out) {
    for (int64_t c = 0; c < p.cents; c += 100) out.collect(p.user + "#" + std::to_string(c / 100));
  });
  std::vector<StreamRecord<std::string>> expected;
  for (const auto& r : kInput) {
    h->process_element(r.value, r.ts);
    for (int64_t c = 0; c < r.value.cents; c += 100) {
      expected.push_back({r.value.user + "#" + std::to_string(c / 100), r.ts});
    }
  }
  ASSERT_EQ(expected.size(), 3u);  // ann 120 -> 2, ann 99 -> 1
  EXPECT_EQ(h->output().records(), expected);
}

TEST(FlatMapOperator, CollectWithTimestampOverridesTheInputTimestamp) {
  auto h = flat_map_harness<Payment, int64_t>([](const Payment& p, Collector<int64_t>& out) {
    out.collect(p.cents);
    out.collect_with_timestamp(-p.cents, 42);
  });
  h->process_element(kInput[0].value, kInput[0].ts);
  h->process_element(kInput[1].value, kInput[1].ts);
  EXPECT_EQ(h->output().records(), (std::vector<StreamRecord<int64_t>>{{120, EventTime(1'000)},
                                                                       {-120, EventTime(42)},
                                                                       {-5, EventTime(700)},
                                                                       {5, EventTime(42)}}));
}

// --- InvalidRecord: a dead letter, and the stream goes on ------------------

/// Checks the dead letter a user function's InvalidRecord must produce.
void expect_dead_letter(const DeadLetter& dl, const std::string& op, const std::string& reason,
                        const std::string& payload_json) {
  EXPECT_EQ(dl.reason, reason);
  EXPECT_EQ(dl.payload, payload_json);
  EXPECT_EQ(dl.operator_name, op);
  EXPECT_EQ(dl.job, "payments");
  EXPECT_NE(dl.origin.find(op), std::string::npos) << dl.origin;
}

TEST(MapOperator, InvalidRecordBecomesADeadLetterAndTheNextRecordIsProcessed) {
  auto h = map_harness<Payment, int64_t>([](const Payment& p) -> int64_t {
    if (p.cents < 0) throw InvalidRecord("negative amount " + std::to_string(p.cents));
    return p.cents;
  });
  for (const auto& r : kInput) h->process_element(r.value, r.ts);
  ASSERT_EQ(h->dead_letters().size(), 1u);
  expect_dead_letter(h->dead_letters()[0], "map", "negative amount -5",
                     R"({"user":"bob","cents":-5})");
  EXPECT_EQ(h->metrics().dead_letters.load(), 1u);
  EXPECT_EQ(h->output().records(), (std::vector<StreamRecord<int64_t>>{
                                       {120, EventTime(1'000)}, {0, EventTime(2'500)}, {99, EventTime(2'501)}}));
  EXPECT_TRUE(h->failures().empty());
}

TEST(FilterOperator, InvalidRecordBecomesADeadLetterAndTheNextRecordIsProcessed) {
  auto h = filter_harness<Payment>([](const Payment& p) {
    if (p.user == "cy") throw InvalidRecord("unknown user");
    return true;
  });
  for (const auto& r : kInput) h->process_element(r.value, r.ts);
  ASSERT_EQ(h->dead_letters().size(), 1u);
  expect_dead_letter(h->dead_letters()[0], "filter", "unknown user", R"({"user":"cy","cents":0})");
  EXPECT_EQ(h->output().record_count(), 3u);
  EXPECT_EQ(h->output().values().back(), kInput[3].value);
}

TEST(FlatMapOperator, InvalidRecordBecomesADeadLetterAndTheNextRecordIsProcessed) {
  auto h = flat_map_harness<Payment, std::string>([](const Payment& p, Collector<std::string>& out) {
    if (p.cents == 0) throw InvalidRecord("zero amount");
    out.collect(p.user);
  });
  for (const auto& r : kInput) h->process_element(r.value, r.ts);
  ASSERT_EQ(h->dead_letters().size(), 1u);
  expect_dead_letter(h->dead_letters()[0], "flat_map", "zero amount", R"({"user":"cy","cents":0})");
  EXPECT_EQ(h->output().records(), (std::vector<StreamRecord<std::string>>{
                                       {"ann", EventTime(1'000)}, {"bob", EventTime(700)}, {"ann", EventTime(2'501)}}));
  EXPECT_TRUE(h->failures().empty());
}

// --- other exceptions fail the task ------------------------------------------

TEST(MapOperator, OtherExceptionFailsTheTaskNamingTheOperator) {
  auto h = map_harness<Payment, int64_t>(
      [](const Payment& p) -> int64_t {
        if (p.user == "bob") throw std::out_of_range("lookup table has no bob");
        return p.cents;
      },
      named("enrich-payments"));
  h->process_element(kInput[0].value, kInput[0].ts);
  h->process_element(kInput[1].value, kInput[1].ts);
  ASSERT_EQ(h->failures().size(), 1u);
  const std::string& msg = h->failures()[0].message();
  EXPECT_NE(msg.find("enrich-payments"), std::string::npos) << msg;
  EXPECT_NE(msg.find("lookup table has no bob"), std::string::npos) << msg;
  EXPECT_TRUE(h->dead_letters().empty());
  EXPECT_EQ(h->output().record_count(), 1u);
}

TEST(FilterOperator, OtherExceptionFailsTheTaskNamingTheOperator) {
  auto h = filter_harness<Payment>([](const Payment&) -> bool { throw 7; }, named("drop-test-users"));
  h->process_element(kInput[0].value, kInput[0].ts);
  ASSERT_EQ(h->failures().size(), 1u);
  EXPECT_NE(h->failures()[0].message().find("drop-test-users"), std::string::npos);
  EXPECT_EQ(h->output().record_count(), 0u);
}

TEST(FlatMapOperator, OtherExceptionFailsTheTaskNamingTheOperator) {
  auto h = flat_map_harness<Payment, int64_t>(
      [](const Payment&, Collector<int64_t>&) { throw std::runtime_error("disk on fire"); },
      named("explode"));
  h->process_element(kInput[0].value, kInput[0].ts);
  ASSERT_EQ(h->failures().size(), 1u);
  EXPECT_NE(h->failures()[0].message().find("explode"), std::string::npos);
  EXPECT_NE(h->failures()[0].message().find("disk on fire"), std::string::npos);
  EXPECT_TRUE(h->dead_letters().empty());
}

}  // namespace
}  // namespace sluice::basic
