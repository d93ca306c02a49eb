// Keyed process functions (state, timers, side outputs) driven through the
// operator harness. A scripted function does what each input command says,
// so every test states its scenario as data and computes what must come
// out with plain maps and sorts.
#include "operators/basic/keyed_process.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "tests/harness/operator_harness.h"

namespace sluice::basic {
namespace {

using harness::HarnessOptions;
using harness::OneInputOperatorHarness;
using harness::OperatorSnapshot;
using harness::StreamRecord;

/// An instruction for ScriptFunction.
struct Cmd {
  std::string key;
  std::string op;  // add | event | del-event | proc | del-proc | side | bad | boom
  int64_t at = 0;  // timer time, or the amount of "add"
  std::string item;
  SLUICE_FIELDS(key, op, at, item)
};

/// What ScriptFunction emits.
struct Emitted {
  std::string what;  // "add", "event-timer", "proc-timer"
  std::string key;
  int64_t ctx_ts = 0;     // ctx.timestamp()
  int64_t count = 0;      // add: records of the key so far (ValueState)
  int64_t sum = 0;        // add: sum of the key's amounts (ListState)
  int64_t item_sum = 0;   // add: sum of the key's amounts for this item (MapState)
  int64_t items = 0;      // add: distinct items of the key (MapState)
  int64_t watermark = 0;  // timers: the watermark the function sees
  SLUICE_FIELDS(what, key, ctx_ts, count, sum, item_sum, items, watermark)
  bool operator==(const Emitted&) const = default;
  auto operator<=>(const Emitted&) const = default;
};

const OutputTag<std::string> kAudit("audit");

/// Executes Cmds: keyed state in "add", timers, side output, exceptions.
class ScriptFunction final : public KeyedProcessFunction<std::string, Cmd, Emitted> {
 public:
  void open(RuntimeContext& rc) override {
    count_ = rc.get_state(state::ValueStateDescriptor<int64_t>{"count", {}});
    amounts_ = rc.get_list_state(state::ListStateDescriptor<int64_t>{"amounts", {}});
    items_ = rc.get_map_state(state::MapStateDescriptor<std::string, int64_t>{"items", {}});
  }
  void process_element(const Cmd& c, Context& ctx, Collector<Emitted>& out) override {
    auto& timers = ctx.timer_service();
    if (c.op == "add") {
      count_->update(count_->value().value_or(0) + 1);
      amounts_->add(c.at);
      items_->put(c.item, items_->get(c.item).value_or(0) + c.at);
      int64_t sum = 0;
      for (int64_t a : amounts_->get()) sum += a;
      out.collect({"add", ctx.current_key(), ctx.timestamp(), *count_->value(), sum,
                   *items_->get(c.item), static_cast<int64_t>(items_->entries().size()), 0});
    } else if (c.op == "event") {
      timers.register_event_time_timer(c.at);
    } else if (c.op == "del-event") {
      timers.delete_event_time_timer(c.at);
    } else if (c.op == "proc") {
      timers.register_processing_time_timer(c.at);
    } else if (c.op == "del-proc") {
      timers.delete_processing_time_timer(c.at);
    } else if (c.op == "side") {
      ctx.output(kAudit, ctx.current_key() + ":" + c.item);
    } else if (c.op == "bad") {
      throw InvalidRecord("bad command for " + c.key);
    } else if (c.op == "boom") {
      throw std::logic_error("script exploded");
    }
  }
  void on_timer(int64_t ts, OnTimerContext& ctx, Collector<Emitted>& out) override {
    if (ctx.current_key() == "explode") throw std::runtime_error("timer exploded");
    bool event = ctx.time_domain() == TimeDomain::kEventTime;
    Emitted e;
    e.what = event ? "event-timer" : "proc-timer";
    e.key = ctx.current_key();
    e.ctx_ts = ctx.timestamp();
    e.count = ts;
    e.watermark = ctx.timer_service().current_watermark();
    out.collect(e);
  }

 private:
  state::ValueState<int64_t>* count_ = nullptr;
  state::ListState<int64_t>* amounts_ = nullptr;
  state::MapState<std::string, int64_t>* items_ = nullptr;
};

using Harness = OneInputOperatorHarness<Cmd, Emitted>;

std::unique_ptr<runtime::StreamOperator> make_op() {
  auto ks = std::make_shared<runtime::KeySelector<Cmd, std::string>>([](const Cmd& c) { return c.key; });
  return std::make_unique<KeyedProcessOperator<std::string, Cmd, Emitted, ScriptFunction>>(
      ks, ScriptFunction());
}

HarnessOptions keyed(int32_t parallelism = 1, int32_t subtask = 0) {
  HarnessOptions o = HarnessOptions::keyed_subtask(parallelism, subtask);
  o.operator_name = "script";
  return o;
}

std::unique_ptr<Harness> open_harness(HarnessOptions o = keyed()) {
  auto h = std::make_unique<Harness>(make_op(), std::move(o));
  EXPECT_TRUE(h->open().is_ok());
  return h;
}

Cmd cmd(std::string key, std::string op, int64_t at = 0, std::string item = "") {
  return {std::move(key), std::move(op), at, std::move(item)};
}

/// A timer as the test expects it to fire.
struct TimerRef {
  int64_t ts;
  std::string key;
  auto operator<=>(const TimerRef&) const = default;
};

std::vector<TimerRef> fired_timers(const std::vector<StreamRecord<Emitted>>& records,
                                   const std::string& what) {
  std::vector<TimerRef> out;
  for (const auto& r : records) {
    if (r.value.what != what) continue;
    // The timer's time is the record's timestamp and the context's timestamp.
    EXPECT_EQ(r.ts, EventTime(r.value.count)) << r.value.key;
    EXPECT_EQ(r.value.ctx_ts, r.value.count) << r.value.key;
    out.push_back({r.value.count, r.value.key});
  }
  return out;
}

bool timestamps_non_decreasing(const std::vector<TimerRef>& timers) {
  return std::is_sorted(timers.begin(), timers.end(),
                        [](const TimerRef& a, const TimerRef& b) { return a.ts < b.ts; });
}

// --- keyed state --------------------------------------------------------------

TEST(KeyedProcessOperator, ValueListAndMapStateArePerKey) {
  auto h = open_harness();
  const std::vector<Cmd> input{cmd("a", "add", 5, "x"),  cmd("b", "add", 7, "x"),
                               cmd("a", "add", 1, "y"),  cmd("c", "add", -3, "x"),
                               cmd("a", "add", 10, "x"), cmd("b", "add", 2, "z"),
                               cmd("c", "add", 4, "x"),  cmd("a", "add", 0, "z")};
  // Reference: plain maps per key.
  std::map<std::string, int64_t> count, sum;
  std::map<std::string, std::map<std::string, int64_t>> items;
  std::vector<StreamRecord<Emitted>> expected;
  int64_t ts = 100;
  for (const Cmd& c : input) {
    h->process_element(c, ts);
    ++count[c.key];
    sum[c.key] += c.at;
    items[c.key][c.item] += c.at;
    expected.push_back({{"add", c.key, ts, count[c.key], sum[c.key], items[c.key][c.item],
                         static_cast<int64_t>(items[c.key].size()), 0},
                        EventTime(ts)});
    ts += 3;
  }
  EXPECT_EQ(h->output().records(), expected);
  EXPECT_TRUE(h->failures().empty());
}

TEST(KeyedProcessOperator, KeyedStateSurvivesSnapshotAndRestore) {
  auto h = open_harness();
  h->process_element(cmd("a", "add", 5, "x"), 1);
  h->process_element(cmd("b", "add", 7, "y"), 2);
  OperatorSnapshot snap = h->snapshot();
  h->process_element(cmd("a", "add", 1000, "x"), 3);  // after the snapshot: must not be restored
  auto r = Harness::restored(make_op(), keyed(), snap);
  ASSERT_TRUE(r->open().is_ok());
  r->process_element(cmd("a", "add", 2, "x"), 4);
  r->process_element(cmd("b", "add", 3, "z"), 5);
  EXPECT_EQ(r->output().values(),
            (std::vector<Emitted>{{"add", "a", 4, 2, 7, 7, 1, 0}, {"add", "b", 5, 2, 10, 3, 2, 0}}));
}

TEST(KeyedProcessOperator, RestoringWithAnotherParallelismKeepsEveryKeysState) {
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) keys.push_back("user-" + std::to_string(i));
  // Parallelism 3: key i gets i + 1 records of amount 1.
  std::vector<OperatorSnapshot> parts;
  for (int32_t s = 0; s < 3; ++s) {
    auto h = open_harness(keyed(3, s));
    for (size_t i = 0; i < keys.size(); ++i) {
      if (harness::subtask_for_key(keys[i], 3) != s) continue;
      for (size_t n = 0; n <= i; ++n) h->process_element(cmd(keys[i], "add", 1, "x"), 1);
    }
    EXPECT_TRUE(h->failures().empty());
    parts.push_back(h->snapshot());
  }
  OperatorSnapshot all = OperatorSnapshot::merge(parts);
  for (int32_t p : {1, 2, 5}) {
    std::map<std::string, int64_t> seen;
    for (int32_t s = 0; s < p; ++s) {
      auto h = Harness::restored(make_op(), keyed(p, s), all);
      ASSERT_TRUE(h->open().is_ok());
      for (const auto& k : keys) {
        if (harness::subtask_for_key(k, p) == s) h->process_element(cmd(k, "add", 1, "x"), 2);
      }
      EXPECT_TRUE(h->failures().empty());
      for (const Emitted& e : h->output().values()) seen[e.key] = e.count;
    }
    ASSERT_EQ(seen.size(), keys.size()) << "parallelism " << p;
    for (size_t i = 0; i < keys.size(); ++i) {
      EXPECT_EQ(seen[keys[i]], static_cast<int64_t>(i) + 2) << keys[i] << " at parallelism " << p;
    }
  }
}

TEST(KeyedProcessOperator, RecordOfAKeyOwnedByAnotherSubtaskFailsTheTask) {
  std::string foreign;
  for (int i = 0; foreign.empty(); ++i) {
    std::string k = "k" + std::to_string(i);
    if (harness::subtask_for_key(k, 2) == 1) foreign = k;
  }
  auto h = open_harness(keyed(2, 0));
  h->process_element(cmd(foreign, "add", 1, "x"), 1);
  ASSERT_EQ(h->failures().size(), 1u);
  EXPECT_NE(h->failures()[0].message().find("key group"), std::string::npos);
  EXPECT_EQ(h->output().record_count(), 0u);
}

// --- event-time timers --------------------------------------------------------

TEST(KeyedProcessOperator, EventTimeTimersFireInTimestampOrderWhenTheWatermarkPassesThem) {
  auto h = open_harness();
  const std::vector<Cmd> timers{cmd("a", "event", 50), cmd("b", "event", 20), cmd("c", "event", 35),
                                cmd("a", "event", 20), cmd("b", "event", 90), cmd("c", "event", 35),
                                cmd("d", "event", 61), cmd("a", "event", 10)};
  for (const Cmd& c : timers) h->process_element(c, 5);
  // Reference: distinct (ts, key) pairs, fired once the watermark reaches ts.
  std::set<TimerRef> pending;
  for (const Cmd& c : timers) pending.insert({c.at, c.key});
  for (int64_t wm : {9, 20, 49, 61, 200}) {
    h->process_watermark(wm);
    std::vector<TimerRef> expected;
    for (auto it = pending.begin(); it != pending.end() && it->ts <= wm;) {
      expected.push_back(*it);
      it = pending.erase(it);
    }
    auto events = h->output().events();
    auto records = h->output().take_records();
    auto fired = fired_timers(records, "event-timer");
    EXPECT_TRUE(timestamps_non_decreasing(fired)) << "watermark " << wm;
    std::sort(fired.begin(), fired.end());
    EXPECT_EQ(fired, expected) << "watermark " << wm;
    for (const auto& r : records) EXPECT_EQ(r.value.watermark, wm);
    // The watermark goes downstream after the timers it fired.
    ASSERT_FALSE(events.empty());
    EXPECT_TRUE(events.back().is_watermark());
    EXPECT_EQ(events.back().ts, EventTime(wm));
  }
  EXPECT_TRUE(pending.empty());
}

TEST(KeyedProcessOperator, EventTimeTimerDoesNotFireBeforeTheWatermarkReachesIt) {
  auto h = open_harness();
  h->process_element(cmd("a", "event", 1'000), 1);
  h->process_watermark(999);
  EXPECT_EQ(h->output().record_count(), 0u);
  h->process_watermark(999);  // a repeated watermark changes nothing
  EXPECT_EQ(h->output().record_count(), 0u);
  h->process_watermark(1'000);
  EXPECT_EQ(fired_timers(h->output().records(), "event-timer"),
            (std::vector<TimerRef>{{1'000, "a"}}));
  h->process_watermark(5'000);  // fires once only
  EXPECT_EQ(h->output().record_count(), 1u);
}

TEST(KeyedProcessOperator, DeletedEventTimeTimersDoNotFire) {
  auto h = open_harness();
  for (const Cmd& c : {cmd("a", "event", 10), cmd("a", "event", 20), cmd("b", "event", 10),
                       cmd("a", "del-event", 10), cmd("b", "del-event", 99)}) {
    h->process_element(c, 1);
  }
  h->process_watermark(100);
  auto fired = fired_timers(h->output().records(), "event-timer");
  std::sort(fired.begin(), fired.end());
  EXPECT_EQ(fired, (std::vector<TimerRef>{{10, "b"}, {20, "a"}}));
}

// --- processing-time timers ---------------------------------------------------

TEST(KeyedProcessOperator, ProcessingTimeTimersFireWhenTheManualClockPassesThem) {
  auto h = open_harness();
  const std::vector<Cmd> timers{cmd("a", "proc", 1'500), cmd("b", "proc", 1'200), cmd("c", "proc", 3'000),
                                cmd("a", "proc", 1'200), cmd("b", "proc", 1'200)};
  for (const Cmd& c : timers) h->process_element(c, 5);
  h->process_watermark(10'000);  // event time does not fire processing timers
  EXPECT_EQ(h->output().record_count(), 0u);
  std::set<TimerRef> pending;
  for (const Cmd& c : timers) pending.insert({c.at, c.key});
  for (int64_t now : {1'199, 1'200, 2'999, 5'000}) {
    h->set_processing_time(now);
    std::vector<TimerRef> expected;
    for (auto it = pending.begin(); it != pending.end() && it->ts <= now;) {
      expected.push_back(*it);
      it = pending.erase(it);
    }
    auto fired = fired_timers(h->output().take_records(), "proc-timer");
    EXPECT_TRUE(timestamps_non_decreasing(fired)) << "time " << now;
    std::sort(fired.begin(), fired.end());
    EXPECT_EQ(fired, expected) << "time " << now;
  }
  EXPECT_TRUE(pending.empty());
}

TEST(KeyedProcessOperator, DeletedProcessingTimeTimersDoNotFire) {
  auto h = open_harness();
  for (const Cmd& c : {cmd("a", "proc", 100), cmd("b", "proc", 300), cmd("a", "del-proc", 100),
                       cmd("c", "proc", 200)}) {
    h->process_element(c, 1);
  }
  h->set_processing_time(150);
  EXPECT_EQ(h->output().record_count(), 0u);
  h->set_processing_time(400);
  EXPECT_EQ(fired_timers(h->output().records(), "proc-timer"),
            (std::vector<TimerRef>{{200, "c"}, {300, "b"}}));
}

TEST(KeyedProcessOperator, ProcessingTimerRegisteredAfterADeletedEarlierOneStillFires) {
  auto h = open_harness();
  h->process_element(cmd("a", "proc", 100), 1);
  h->process_element(cmd("a", "del-proc", 100), 1);
  h->process_element(cmd("a", "proc", 250), 1);
  h->set_processing_time(100);
  EXPECT_EQ(h->output().record_count(), 0u);
  h->set_processing_time(249);
  EXPECT_EQ(h->output().record_count(), 0u);
  h->set_processing_time(250);
  EXPECT_EQ(fired_timers(h->output().records(), "proc-timer"), (std::vector<TimerRef>{{250, "a"}}));
}

// --- timers and restore -------------------------------------------------------

/// Registers event timers (ts = 100 + 10*i) and processing timers
/// (1000 + 10*i) for key i, deletes every third event timer.
std::vector<Cmd> timer_setup(const std::vector<std::string>& keys) {
  std::vector<Cmd> out;
  for (size_t i = 0; i < keys.size(); ++i) {
    out.push_back(cmd(keys[i], "event", 100 + 10 * static_cast<int64_t>(i)));
    out.push_back(cmd(keys[i], "proc", 1'000 + 10 * static_cast<int64_t>(i)));
    if (i % 3 == 0) out.push_back(cmd(keys[i], "del-event", 100 + 10 * static_cast<int64_t>(i)));
  }
  return out;
}

TEST(KeyedProcessOperator, TimersSurviveSnapshotAndRestore) {
  const std::vector<std::string> keys{"a", "b", "c", "d", "e", "f", "g"};
  auto h = open_harness();
  for (const Cmd& c : timer_setup(keys)) h->process_element(c, 1);
  h->process_watermark(125);  // fires a few before the snapshot
  h->set_processing_time(1'015);
  std::set<TimerRef> event_before, proc_before;
  for (auto t : fired_timers(h->output().records(), "event-timer")) event_before.insert(t);
  for (auto t : fired_timers(h->output().records(), "proc-timer")) proc_before.insert(t);
  OperatorSnapshot snap = h->snapshot();

  // Reference: timers not deleted fire before the snapshot if due by then,
  // else after the restore.
  std::set<TimerRef> event_expected, proc_expected, event_due, proc_due;
  for (size_t i = 0; i < keys.size(); ++i) {
    int64_t et = 100 + 10 * static_cast<int64_t>(i), pt = 1'000 + 10 * static_cast<int64_t>(i);
    if (i % 3 != 0) (et > 125 ? event_expected : event_due).insert({et, keys[i]});
    (pt > 1'015 ? proc_expected : proc_due).insert({pt, keys[i]});
  }
  EXPECT_EQ(event_before, event_due);
  EXPECT_EQ(proc_before, proc_due);
  ASSERT_FALSE(event_due.empty());
  ASSERT_FALSE(proc_due.empty());
  ASSERT_FALSE(event_expected.empty());
  ASSERT_FALSE(proc_expected.empty());

  HarnessOptions o = keyed();
  o.start_processing_time = 1'015;
  auto r = Harness::restored(make_op(), o, snap);
  ASSERT_TRUE(r->open().is_ok());
  r->process_watermark(1'000);
  r->set_processing_time(10'000);
  auto ev = fired_timers(r->output().records(), "event-timer");
  auto pr = fired_timers(r->output().records(), "proc-timer");
  EXPECT_TRUE(timestamps_non_decreasing(ev));
  EXPECT_TRUE(timestamps_non_decreasing(pr));
  EXPECT_EQ(std::set<TimerRef>(ev.begin(), ev.end()), event_expected);
  EXPECT_EQ(ev.size(), event_expected.size());
  EXPECT_EQ(std::set<TimerRef>(pr.begin(), pr.end()), proc_expected);
  EXPECT_EQ(pr.size(), proc_expected.size());
}

TEST(KeyedProcessOperator, TimersFollowTheirKeysWhenRescaling) {
  std::vector<std::string> keys;
  for (int i = 0; i < 16; ++i) keys.push_back("k" + std::to_string(i));
  auto h = open_harness();
  for (const Cmd& c : timer_setup(keys)) h->process_element(c, 1);
  OperatorSnapshot snap = h->snapshot();

  std::multiset<TimerRef> event_fired, proc_fired;
  for (int32_t s = 0; s < 2; ++s) {
    auto r = Harness::restored(make_op(), keyed(2, s), snap);
    ASSERT_TRUE(r->open().is_ok());
    r->process_watermark(1'000);
    r->set_processing_time(10'000);
    for (auto t : fired_timers(r->output().records(), "event-timer")) {
      EXPECT_EQ(harness::subtask_for_key(t.key, 2), s) << t.key;
      event_fired.insert(t);
    }
    for (auto t : fired_timers(r->output().records(), "proc-timer")) {
      EXPECT_EQ(harness::subtask_for_key(t.key, 2), s) << t.key;
      proc_fired.insert(t);
    }
  }
  std::multiset<TimerRef> event_expected, proc_expected;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i % 3 != 0) event_expected.insert({100 + 10 * static_cast<int64_t>(i), keys[i]});
    proc_expected.insert({1'000 + 10 * static_cast<int64_t>(i), keys[i]});
  }
  EXPECT_EQ(event_fired, event_expected);
  EXPECT_EQ(proc_fired, proc_expected);
}

// --- side outputs and errors --------------------------------------------------

TEST(KeyedProcessOperator, SideOutputCarriesTheRecordTimestamp) {
  auto h = std::make_unique<Harness>(make_op(), keyed());
  auto& audit = h->register_side_output<std::string>(kAudit.id);
  ASSERT_TRUE(h->open().is_ok());
  h->process_element(cmd("a", "side", 0, "login"), 40);
  h->process_element(cmd("b", "add", 1, "x"), 41);
  h->process_element(cmd("b", "side", 0, "logout"), 42);
  EXPECT_EQ(audit.records(), (std::vector<StreamRecord<std::string>>{{"a:login", EventTime(40)},
                                                                     {"b:logout", EventTime(42)}}));
  EXPECT_EQ(h->output().record_count(), 1u);
}

TEST(KeyedProcessOperator, SideOutputWithoutAConsumerIsDropped) {
  auto h = open_harness();
  h->process_element(cmd("a", "side", 0, "login"), 40);
  EXPECT_EQ(h->output().record_count(), 0u);
  EXPECT_TRUE(h->failures().empty());
}

TEST(KeyedProcessOperator, InvalidRecordBecomesADeadLetterAndTheNextRecordIsProcessed) {
  auto h = open_harness();
  h->process_element(cmd("a", "bad"), 1);
  h->process_element(cmd("a", "add", 3, "x"), 2);
  ASSERT_EQ(h->dead_letters().size(), 1u);
  const DeadLetter& dl = h->dead_letters()[0];
  EXPECT_EQ(dl.reason, "bad command for a");
  EXPECT_EQ(dl.payload, R"({"key":"a","op":"bad","at":0,"item":""})");
  EXPECT_EQ(dl.operator_name, "script");
  EXPECT_EQ(h->output().record_count(), 1u);
  EXPECT_TRUE(h->failures().empty());
}

TEST(KeyedProcessOperator, OtherExceptionFailsTheTaskNamingTheOperator) {
  auto h = open_harness();
  h->process_element(cmd("a", "boom"), 1);
  ASSERT_EQ(h->failures().size(), 1u);
  EXPECT_NE(h->failures()[0].message().find("script"), std::string::npos);
  EXPECT_NE(h->failures()[0].message().find("script exploded"), std::string::npos);
  EXPECT_TRUE(h->dead_letters().empty());
}

TEST(KeyedProcessOperator, ExceptionInOnTimerFailsTheTask) {
  auto h = open_harness();
  h->process_element(cmd("explode", "event", 10), 1);
  h->process_element(cmd("fine", "event", 10), 1);
  h->process_watermark(10);
  ASSERT_EQ(h->failures().size(), 1u);
  EXPECT_NE(h->failures()[0].message().find("timer exploded"), std::string::npos);
  EXPECT_NE(h->failures()[0].message().find("script"), std::string::npos);
}

}  // namespace
}  // namespace sluice::basic
