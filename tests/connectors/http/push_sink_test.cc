// The HTTP push sink against a real local HTTP server (PushReceiver),
// driven through the operator harness: batches with idempotency keys,
// headers and secrets, retries that keep key and body, refusals as dead
// letters, input suspended while the receiver is down, restores that
// re-send checkpointed batches with their keys, delivery after checkpoints,
// URL templates, and URI errors.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "connectors/http/http_sink.h"
#include "tests/connectors/http/push_harness.h"
#include "tests/connectors/http/push_receiver.h"
#include "tests/harness/operator_harness.h"

namespace sluice::http_sink {
namespace {

using push_test::PushReceiver;
using push_test::Received;

struct Update {
  int64_t minute = 0;
  int32_t step = 0;
  int64_t entered = 0;
  SLUICE_FIELDS(minute, step, entered)
  bool operator==(const Update&) const = default;
};

using Harness = harness::OneInputOperatorHarness<Update, Update>;

/// The push sink of a URI, remembering the writers it creates (so tests
/// can read their cores' stats).
class WatchedSink final : public runtime::Sink<Update> {
 public:
  explicit WatchedSink(const std::string& uri) {
    auto c = PushSinkConfig::parse(uri);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    if (c.is_ok()) config_ = *c;
  }
  std::string description() const override { return config_.uri; }
  std::unique_ptr<runtime::SinkWriter<Update>> create_writer() const override {
    auto w = std::make_unique<HttpPushWriter<Update>>(config_, make_format(config_));
    last_ = w.get();
    return w;
  }
  // The core of the writer created last (the harness's).
  PushSinkCore& core() const { return last_->core(); }

 private:
  PushSinkConfig config_;
  mutable HttpPushWriter<Update>* last_ = nullptr;
};

std::map<const runtime::StreamOperator*, std::shared_ptr<WatchedSink>>& sinks() {
  static std::map<const runtime::StreamOperator*, std::shared_ptr<WatchedSink>> m;
  return m;
}

std::unique_ptr<runtime::StreamOperator> sink_op(const std::string& uri) {
  auto s = std::make_shared<WatchedSink>(uri);
  auto op = std::make_unique<runtime::SinkOperator<Update>>(s);
  sinks()[op.get()] = s;
  return op;
}

harness::HarnessOptions options() { return push_test::sink_options("funnel sink", "funnel-job"); }
using push_test::drive;
using push_test::drive_for;

PushSinkCore& core_of(Harness& h) { return sinks().at(&h.op())->core(); }

std::vector<Update> updates(int n) {
  std::vector<Update> out;
  for (int i = 0; i < n; ++i) out.push_back({60'000LL * (i / 4), i % 4, i});
  return out;
}

/// The records of a json batch body, and its idempotency_key.
std::vector<Update> records_of(const std::string& body, std::string* key = nullptr) {
  simdjson::dom::parser p;
  simdjson::dom::element d;
  EXPECT_EQ(p.parse(body).get(d), simdjson::SUCCESS) << body;
  if (key) *key = std::string(d["idempotency_key"].get_string().value());
  std::vector<Update> out;
  for (auto r : d["records"].get_array()) {
    out.push_back({r["minute"].get_int64().value(), static_cast<int32_t>(r["step"].get_int64().value()),
                   r["entered"].get_int64().value()});
  }
  return out;
}

TEST(HttpPushSink, BatchesCarryTheirKeyHeadersAndRecordsInOrder) {
  auto rx = PushReceiver::start();
  ASSERT_TRUE(rx);
  ::setenv("PUSH_TEST_TOKEN", "t0k3n", 1);
  const std::string tenant_file = ::testing::TempDir() + "/push-tenant";
  std::ofstream(tenant_file) << "acme\n";
  Harness h(sink_op(rx->url("/funnel") + "?batch_size=50&linger=100ms&auth_token=env:PUSH_TEST_TOKEN&header.X-Tenant=file:" +
                    tenant_file),
            options());
  ASSERT_TRUE(h.open().is_ok());
  const auto in = updates(230);
  for (const auto& u : in) h.process_element(u, EventTime(u.minute));
  ASSERT_TRUE(drive(h, [&] { return core_of(h).stats().acked == 5; })) << rx->count() << " requests";
  std::vector<Update> got;
  std::set<std::string> keys;
  for (const auto& r : rx->requests()) {
    EXPECT_EQ(r.code, 200);
    EXPECT_EQ(r.path, "/funnel");
    EXPECT_EQ(r.authorization, "Bearer t0k3n");
    EXPECT_EQ(r.tenant, "acme");
    EXPECT_EQ(r.content_type, "application/json");
    std::string body_key;
    auto recs = records_of(r.body, &body_key);
    EXPECT_EQ(body_key, r.key);
    EXPECT_TRUE(std::regex_match(r.key, std::regex("funnel-job-0-[0-9a-f]{8}-c0-[0-9]+"))) << r.key;
    EXPECT_TRUE(keys.insert(r.key).second) << "a key is used once";
    got.insert(got.end(), recs.begin(), recs.end());
  }
  EXPECT_EQ(got, in) << "in order: one batch in flight at a time";
  EXPECT_EQ(core_of(h).stats().acked, 5u);
}

TEST(HttpPushSink, RetriesKeepTheKeyAndTheBodyUntilTheReceiverTakesIt) {
  auto rx = PushReceiver::start();
  ASSERT_TRUE(rx);
  std::mutex mu;
  std::map<std::string, int> attempts;
  rx->set_responder([&](const Received& r) {
    std::lock_guard lk(mu);
    return ++attempts[r.key] < 3 ? (attempts[r.key] == 1 ? 503 : 429) : 200;
  });
  Harness h(sink_op(rx->url("/u") + "?batch_size=40&linger=50ms&retry_initial=20ms&retry_max=100ms"), options());
  ASSERT_TRUE(h.open().is_ok());
  const auto in = updates(120);
  for (const auto& u : in) h.process_element(u, EventTime(u.minute));
  ASSERT_TRUE(drive(h, [&] { return core_of(h).stats().acked == 3; }));
  std::map<std::string, std::set<std::string>> bodies;
  for (const auto& r : rx->requests()) bodies[r.key].insert(r.body);
  ASSERT_EQ(bodies.size(), 3u);
  for (const auto& [k, b] : bodies) EXPECT_EQ(b.size(), 1u) << "every attempt of " << k << " sends the same body";
  EXPECT_EQ(rx->count(), 9u);
  EXPECT_EQ(core_of(h).stats().retried, 6u);
  EXPECT_TRUE(h.dead_letters().empty());
}

TEST(HttpPushSink, ARefusedBatchsRecordsBecomeDeadLettersAndTheRestGoOn) {
  auto rx = PushReceiver::start();
  ASSERT_TRUE(rx);
  rx->set_responder([](const Received& r) { return r.body.find("\"entered\":7}") != std::string::npos ? 422 : 200; });
  Harness h(sink_op(rx->url("/u") + "?batch_size=5&linger=20ms"), options());
  ASSERT_TRUE(h.open().is_ok());
  for (const auto& u : updates(20)) h.process_element(u, EventTime(u.minute));
  ASSERT_TRUE(drive(h, [&] { return core_of(h).stats().acked + core_of(h).stats().refused == 4; }));
  ASSERT_EQ(h.dead_letters().size(), 5u) << "the batch holding record 7";
  EXPECT_NE(h.dead_letters()[0].reason.find("HTTP 422"), std::string::npos) << h.dead_letters()[0].reason;
  EXPECT_EQ(h.dead_letters()[0].payload, "{\"minute\":60000,\"step\":1,\"entered\":5}");
  EXPECT_EQ(core_of(h).stats().records_acked, 15u);
}

TEST(HttpPushSink, WhileTheReceiverIsDownTheInputIsSuspendedAndNothingIsLost) {
  auto rx = PushReceiver::start();
  ASSERT_TRUE(rx);
  Harness h(sink_op(rx->url("/u") + "?linger=0ms&max_pending=3&retry_initial=20ms&retry_max=50ms"), options());
  ASSERT_TRUE(h.open().is_ok());
  rx->down();
  const auto in = updates(3);
  for (const auto& u : in) h.process_element(u, EventTime(u.minute));
  ASSERT_TRUE(drive(h, [&] { return core_of(h).stats().retried >= 6; }));
  EXPECT_TRUE(h.mailbox_queue().input_suspended()) << "three batches wait: no more input";
  ASSERT_TRUE(rx->up());
  ASSERT_TRUE(drive(h, [&] { return core_of(h).stats().pending == 0; }));
  EXPECT_FALSE(h.mailbox_queue().input_suspended());
  std::vector<Update> got;
  for (const auto& r : rx->requests()) {
    auto recs = records_of(r.body);
    got.insert(got.end(), recs.begin(), recs.end());
  }
  EXPECT_EQ(got, in);
}

TEST(HttpPushSink, ARestoreResendsTheCheckpointsBatchesWithTheirKeysAndBodies) {
  auto rx = PushReceiver::start();
  ASSERT_TRUE(rx);
  rx->set_responder([](const Received&) { return 503; });
  // Several in flight: every batch is attempted while the receiver refuses.
  const std::string uri = rx->url("/u") + "?batch_size=10&linger=20ms&retry_initial=20ms&max_in_flight=4";
  harness::OperatorSnapshot snap;
  std::map<std::string, std::string> before;
  {
    Harness h(sink_op(uri), options());
    ASSERT_TRUE(h.open().is_ok());
    for (const auto& u : updates(25)) h.process_element(u, EventTime(u.minute));
    snap = h.snapshot(CheckpointId(7));  // seals the last 5 into a third batch
    ASSERT_TRUE(drive(h, [&] { return rx->count() >= 3; }));
    for (const auto& r : rx->requests()) before[r.key] = r.body;
    ASSERT_EQ(before.size(), 3u);
    // The process dies.
  }
  rx->set_responder(nullptr);
  const size_t seen = rx->count();
  auto r = Harness::restored(sink_op(uri), options(), snap);
  ASSERT_TRUE(r->open().is_ok());
  ASSERT_TRUE(drive(*r, [&] { return core_of(*r).stats().acked == 3; }));
  auto all = rx->requests();
  std::map<std::string, std::string> after;
  for (size_t i = seen; i < all.size(); ++i)
    if (all[i].code == 200) after[all[i].key] = all[i].body;
  EXPECT_EQ(after, before) << "same keys, same bodies";
  // New batches of the restored run follow checkpoint 7.
  r->process_element({0, 0, 99}, EventTime(0));
  ASSERT_TRUE(drive(*r, [&] { return core_of(*r).stats().acked == 4; }));
  EXPECT_TRUE(std::regex_match(rx->requests().back().key, std::regex("funnel-job-0-[0-9a-f]{8}-c7-0")))
      << rx->requests().back().key;
}

TEST(HttpPushSink, AfterCheckpointDeliverySendsOnlyWhatACompletedCheckpointCovers) {
  auto rx = PushReceiver::start();
  ASSERT_TRUE(rx);
  const std::string uri = rx->url("/u") + "?batch_size=50&linger=20ms&delivery=after_checkpoint";
  Harness h(sink_op(uri), options());
  ASSERT_TRUE(h.open().is_ok());
  for (const auto& u : updates(120)) h.process_element(u, EventTime(u.minute));
  drive_for(h, 300);
  EXPECT_EQ(rx->count(), 0u) << "nothing before a checkpoint";
  auto snap = h.snapshot(CheckpointId(1));
  drive_for(h, 100);
  EXPECT_EQ(rx->count(), 0u) << "nothing before the checkpoint completes";
  ASSERT_TRUE(h.notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(drive(h, [&] { return core_of(h).stats().acked == 3; }));
  std::map<std::string, std::string> first;
  for (const auto& r : rx->requests()) first[r.key] = r.body;
  // A restore from checkpoint 1 sends the same batches again: a receiver
  // that drops repeated keys sees each record once.
  auto r = Harness::restored(sink_op(uri), options(), snap);
  ASSERT_TRUE(r->open().is_ok());
  ASSERT_TRUE(drive(*r, [&] { return core_of(*r).stats().acked == 3; }));
  std::map<std::string, std::string> again;
  auto all = rx->requests();
  for (size_t i = 3; i < all.size(); ++i) again[all[i].key] = all[i].body;
  EXPECT_EQ(again, first);
}

TEST(HttpPushSink, UrlTemplatesRouteRecordsByField) {
  auto rx = PushReceiver::start();
  ASSERT_TRUE(rx);
  Harness h(sink_op(rx->url("/steps/{step}") + "?linger=20ms&max_in_flight=4"), options());
  ASSERT_TRUE(h.open().is_ok());
  for (const auto& u : updates(40)) h.process_element(u, EventTime(u.minute));
  ASSERT_TRUE(drive(h, [&] { return core_of(h).stats().records_acked == 40; }));
  std::map<std::string, int> per_path;
  for (const auto& r : rx->requests()) {
    for (const auto& u : records_of(r.body)) {
      EXPECT_EQ(r.path, "/steps/" + std::to_string(u.step));
      ++per_path[r.path];
    }
  }
  EXPECT_EQ(per_path.size(), 4u);
}

TEST(HttpPushSink, BadUrisAreRefusedWithoutEchoingSecrets) {
  auto msg = [](const std::string& uri) {
    auto s = HttpPushSink<Update>::from_uri(uri);
    EXPECT_FALSE(s.is_ok()) << uri;
    return s.is_ok() ? std::string() : s.status().message();
  };
  EXPECT_NE(msg("http://h/x?batch_size=0").find("batch_size"), std::string::npos);
  EXPECT_NE(msg("http://h/x?linger=soon").find("linger"), std::string::npos);
  EXPECT_NE(msg("http://h/x?auth_token=s3cr3t").find("env:NAME or file:PATH"), std::string::npos);
  EXPECT_EQ(msg("http://h/x?auth_token=s3cr3t").find("s3cr3t"), std::string::npos);
  EXPECT_NE(msg("http://user:pw@h/x").find("credentials"), std::string::npos);
  EXPECT_NE(msg("http://h/{nope}").find("not a scalar field"), std::string::npos);
  EXPECT_NE(msg("http://h/x?delivery=exactly").find("at_least_once or after_checkpoint"), std::string::npos);
  EXPECT_NE(msg("http://h/x?bogus=1").find("unknown parameter"), std::string::npos);
  // A secret that is not there fails the sink's open with its name, not a value.
  ::unsetenv("PUSH_TEST_MISSING");
  Harness h(sink_op("http://127.0.0.1:1/x?auth_token=env:PUSH_TEST_MISSING"), options());
  Status st = h.open();
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("PUSH_TEST_MISSING is not set"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace sluice::http_sink
