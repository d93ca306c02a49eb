// Clients Sluice did not write: kcat produces a job's input and
// python3-confluent-kafka (read_committed) reads its exactly-once output
// and the offsets the job committed for lag tools.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "engine/common/json_read.h"
#include "tests/kafka/kafka_test_util.h"
#include "tests/kafka/test_record.h"

namespace sluice::kafka {
namespace {

using namespace sluice::kafka::testing;

class KafkaInteropTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { broker_ = DevKafka::start({"interop_in:3", "interop_out:2"}).release(); }
  static void TearDownTestSuite() {
    EXPECT_EQ(broker_->stop(), 0);
    delete broker_;
  }
  static const std::string& bs() { return broker_->bootstrap(); }
  static inline DevKafka* broker_ = nullptr;
};

TEST_F(KafkaInteropTest, KcatFeedsTheJobAndPythonReadsItsOutput) {
  std::string dir = make_temp_dir("interop");
  {
    std::ofstream in(dir + "/input");
    for (int i = 1; i <= 600; ++i) in << "k" << (i % 7) << "\t{\"id\":" << i << ",\"body\":\"kcat\"}\n";
  }
  auto kcat = run_process({"/bin/sh", "-c",
                           "kcat -b " + bs() + " -t interop_in -P -K '\t' < " + dir + "/input"});
  ASSERT_EQ(kcat.exit_code, 0) << kcat.output;

  auto job = run_local(test_job_library(),
                       {"-p", "2", "--checkpoint-dir", dir + "/cp", "--checkpoint-interval", "100ms",
                        "--arg", "source=kafka://" + bs() + "/interop_in?start=earliest&stop=latest&group=interop",
                        "--arg", "sink=kafka://" + bs() + "/interop_out?delivery=exactly-once&key=id"});
  ASSERT_EQ(job.exit_code, 0) << job.output;

  const char* script = R"(
import sys
from confluent_kafka import Consumer, TopicPartition
bs, topic = sys.argv[1], sys.argv[2]
c = Consumer({'bootstrap.servers': bs, 'group.id': 'py-reader', 'isolation.level': 'read_committed',
              'enable.partition.eof': True, 'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
parts = c.list_topics(topic, timeout=10).topics[topic].partitions
ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
c.assign([TopicPartition(topic, p, 0) for p in parts])
done = {p for p in parts if ends[p] == 0}
while len(done) < len(parts):
    m = c.poll(10)
    if m is None:
        sys.exit('timed out')
    if m.error():
        if m.error().code() == -191:  # partition EOF
            done.add(m.partition())
            continue
        sys.exit(str(m.error()))
    print('MSG', m.key().decode(), m.value().decode())
g = Consumer({'bootstrap.servers': bs, 'group.id': 'interop'})
for tp in g.committed([TopicPartition('interop_in', p) for p in range(3)], timeout=10):
    print('COMMITTED', tp.partition, tp.offset)
)";
  {
    std::ofstream py(dir + "/read.py");
    py << script;
  }
  auto py = run_process({"/usr/bin/python3", dir + "/read.py", bs(), "interop_out"});
  ASSERT_EQ(py.exit_code, 0) << py.output;

  std::vector<int64_t> ids;
  std::map<int, int64_t> committed;
  JsonParser parser;
  std::istringstream lines(py.output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("MSG ", 0) == 0) {
      std::istringstream f(line.substr(4));
      std::string key, value;
      f >> key >> value;
      TestRecord r;
      ASSERT_EQ(parser.parse(value, r), "") << line;
      EXPECT_EQ(key, std::to_string(r.id));  // key=id
      ids.push_back(r.id);
    } else if (line.rfind("COMMITTED ", 0) == 0) {
      int p;
      int64_t off;
      std::istringstream(line.substr(10)) >> p >> off;
      committed[p] = off;
    }
  }
  std::sort(ids.begin(), ids.end());
  std::vector<int64_t> want(600);
  for (int i = 0; i < 600; ++i) want[i] = i + 1;
  EXPECT_EQ(ids, want);
  // Lag tools see the job at the end of its input.
  int64_t total = 0;
  for (auto [p, off] : committed) total += off;
  EXPECT_EQ(committed.size(), 3u);
  EXPECT_EQ(total, 600);
}

}  // namespace
}  // namespace sluice::kafka
