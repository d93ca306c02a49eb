// End to end with `sluice run-local` checkpointing: a job reading Kafka
// fails mid-stream, restarts from its latest checkpoint, and its output is
// exactly once — to an exactly-once file sink and to an exactly-once
// Kafka sink. Exactness proves that the source resumed at the positions
// of the restored checkpoint and the sink committed each checkpoint once.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "engine/api/job_library.h"
#include "engine/common/json_read.h"
#include "engine/runtime/local_executor.h"
#include "tests/kafka/kafka_test_util.h"
#include "tests/kafka/test_record.h"

namespace sluice::kafka {
namespace {

using namespace sluice::kafka::testing;

class KafkaRestoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    broker_ = DevKafka::start({"rs_in:4", "rs_out:2"}).release();
    // 750 records per partition: partition p holds ids 750p+1 .. 750p+750.
    for (int p = 0; p < 4; ++p) {
      std::vector<std::string> in;
      for (int i = p * 750 + 1; i <= (p + 1) * 750; ++i) {
        in.push_back("{\"id\":" + std::to_string(i) + ",\"body\":\"b\"}");
      }
      produce(bs(), "rs_in", in, p);
    }
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(broker_->stop(), 0);
    delete broker_;
  }
  static const std::string& bs() { return broker_->bootstrap(); }
  static std::vector<int64_t> all_ids() {
    std::vector<int64_t> v(3000);
    for (int i = 0; i < 3000; ++i) v[i] = i + 1;
    return v;
  }
  static inline DevKafka* broker_ = nullptr;
};

TEST_F(KafkaRestoreTest, AFailedJobRestartsFromItsCheckpointAndWritesAFileExactlyOnce) {
  std::string dir = make_temp_dir("restore-file");
  std::filesystem::create_directories(dir + "/out");
  auto r = run_local(test_job_library(),
                     {"-p", "2", "--checkpoint-dir", dir + "/cp", "--checkpoint-interval", "100ms",
                      "--arg", "source=kafka://" + bs() + "/rs_in?start=earliest&stop=latest&group=rs-file",
                      "--arg", "sink=file://" + dir + "/out/out.ndjson", "--arg", "fail_at_id=740",
                      "--arg", "fail_marker=" + dir + "/failed", "--arg", "throttle_us=600"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(std::filesystem::exists(dir + "/failed")) << "the failure was not injected";
  EXPECT_NE(r.output.find("injected failure at id 740"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("from checkpoint"), std::string::npos) << r.output;
  std::vector<int64_t> ids;
  JsonParser p;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/out")) {
    if (e.path().filename().string().rfind('.', 0) == 0) continue;
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      TestRecord rec;
      ASSERT_EQ(p.parse(line, rec), "");
      ids.push_back(rec.id);
    }
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, all_ids());
}

// In process (LocalExecutor, the engine of run-local), so that the
// exactly-once sinks inside the job library use MemoryMarkerStore: the dev
// broker does not keep the transactional offset commits that mark a
// checkpoint's batch as committed, and a batch committed just before the
// failure would otherwise be committed again on restore.
TEST_F(KafkaRestoreTest, AFailedJobRestartsFromItsCheckpointAndWritesKafkaExactlyOnce) {
  std::string dir = make_temp_dir("restore-kafka");
  auto markers = std::make_shared<MemoryMarkerStore>();
  set_marker_store_override_for_testing(markers);
  auto lib = api::JobLibrary::load(test_job_library());
  ASSERT_TRUE(lib.is_ok()) << lib.status().message();
  api::PrepareOptions po;
  po.parallelism = 2;
  po.args = {{"source", "kafka://" + bs() + "/rs_in?start=earliest&stop=latest&group=rs-kafka"},
             {"sink", "kafka://" + bs() + "/rs_out?delivery=exactly-once"},
             {"fail_at_id", "740"},
             {"fail_marker", dir + "/failed"},
             {"throttle_us", "600"}};
  po.config = Configuration({{"checkpoint.dir", dir + "/cp"}, {"checkpoint.interval", "100ms"}});
  auto job = api::prepare_job(*lib, po);
  ASSERT_TRUE(job.is_ok()) << job.status().message();
  runtime::LocalRunOptions ro;
  ro.restart.max_attempts = 3;
  {
    runtime::LocalExecutor executor(job->instance, ro);
    Status st = executor.run();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    EXPECT_EQ(executor.summary().restarts, 1);
  }
  set_marker_store_override_for_testing(nullptr);
  ASSERT_TRUE(std::filesystem::exists(dir + "/failed")) << "the failure was not injected";
  // Both sink subtasks committed under their markers.
  EXPECT_TRUE(markers->get("sluice-kafka_test_job-out-sink-0").has_value());
  EXPECT_TRUE(markers->get("sluice-kafka_test_job-out-sink-1").has_value());
  // The restart restored a checkpoint holding uncommitted batches, and
  // recovery consulted the markers to commit or skip them.
  EXPECT_GE(markers->reads(), 1);
  // The failure is outside any commit, so no transaction was left open:
  // what the dev broker shows is what read_committed shows on Kafka.
  std::vector<int64_t> ids;
  JsonParser p;
  for (const auto& m : read_topic(bs(), "rs_out")) {
    TestRecord rec;
    ASSERT_EQ(p.parse(m.value.value_or(""), rec), "");
    ids.push_back(rec.id);
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, all_ids());
}

}  // namespace
}  // namespace sluice::kafka
