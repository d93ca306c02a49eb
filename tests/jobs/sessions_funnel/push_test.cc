// sessions_funnel's funnel updates pushed to a real local HTTP receiver
// that goes down for 10 s in the middle of the run: nothing is lost (a
// receiver applying batches once per idempotency key ends with exactly
// the reference counts), and the only repeated deliveries are retries of
// one batch: the same key with the same body.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/connectors/http/push_receiver.h"
#include "tests/integration/support.h"
#include "tests/jobs/sessions_funnel/reference.h"

namespace sluice::sf_test {
namespace {

using push_test::PushReceiver;

TEST(SessionsFunnelPush, ReceiverDownForTenSecondsLosesNothingAndRepeatsOnlyRetriedBatches) {
  auto rx = PushReceiver::start();
  ASSERT_TRUE(rx);
  it::TempDir dir;
  const std::string input = dir.file("views.ndjson");
  auto g = it::run_sluice({"gen", "--kind", "pageviews", "--count", "24000", "--seed", "31", "--users", "150",
                           "--late", "0.02", "--very-late", "0.002", "--output", input});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const std::string log = dir.file("job.log");
  const int pid = it::start_process(
      {it::sluice_binary(), "run-local", it::build_dir() + "/jobs/sessions_funnel/libsessions_funnel.so", "-p", "2",
       "--arg", "source=file://" + input + "?rate=1500", "--arg", "sessions=" + dir.uri("sessions.ndjson"), "--arg",
       "funnel_sink=" + rx->url("/funnel") + "?linger=100ms&batch_size=200&retry_initial=100ms&retry_max=1s",
       "--arg", "funnel_update_interval=250ms", "--arg", "late=" + dir.uri("late.ndjson"), "--arg",
       "dlq=" + dir.uri("dlq.ndjson")},
      log);
  ASSERT_GT(pid, 0);
  // Down once the first updates arrived, for 10 s.
  for (int i = 0; i < 400 && rx->count() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ASSERT_GT(rx->count(), 0u) << "no update within 10 s";
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const size_t before_outage = rx->count();
  rx->down();
  const auto down_at = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(10));
  ASSERT_TRUE(rx->up());
  const int code = it::wait_process(pid, std::chrono::seconds(90));
  ASSERT_EQ(code, 0) << it::read_lines(log).size() << " log lines; see " << log;
  const auto requests = rx->requests();
  ASSERT_GT(requests.size(), before_outage + 5) << "the run went on after the outage";
  EXPECT_LT(std::chrono::steady_clock::now() - down_at, std::chrono::seconds(80));

  // Once per key, in arrival order (delivery is in order per sink subtask),
  // the latest update per (minute, step) wins.
  std::map<std::string, std::string> body_of;
  size_t repeated = 0;
  std::vector<std::string> applied;
  simdjson::dom::parser parser;
  for (const auto& r : requests) {
    ASSERT_EQ(r.code, 200);
    ASSERT_FALSE(r.key.empty());
    auto [it, fresh] = body_of.emplace(r.key, r.body);
    if (!fresh) {
      ++repeated;
      EXPECT_EQ(it->second, r.body) << "a repeated key must carry the same batch";
      continue;
    }
    simdjson::dom::element d;
    ASSERT_EQ(parser.parse(r.body).get(d), simdjson::SUCCESS);
    EXPECT_EQ(std::string(d["idempotency_key"].get_string().value()), r.key);
    for (auto rec : d["records"].get_array()) applied.push_back(simdjson::to_string(rec));
  }
  std::cerr << "[push] " << requests.size() << " requests, " << body_of.size() << " batches, " << repeated
            << " repeated deliveries, " << applied.size() << " updates" << std::endl;
  int64_t lines = 0;
  const auto valid = read_valid_views(input, &lines);
  auto late = read_late(dir.file("late.ndjson"));
  const FunnelTable expected = reference_funnel(minus(valid, late["funnel"]), Settings{});
  EXPECT_EQ(diff_funnel(expected, latest_funnel_lines(applied)), "");
}

}  // namespace
}  // namespace sluice::sf_test
