// kafka_test_job: the pipeline of the Kafka tests, source -> map -> sink,
// for records of TestRecord (JSON), with the dead-letter output and an
// injectable failure.
//
// Arguments (--arg key=value):
//   source            source URI (kafka://... or file://...), required
//   sink              sink URI, required
//   dlq               dead-letter URI (default stderr:)
//   sink_parallelism  writers of the sink (default: the job's parallelism)
//   fail_at_id        throw (fail the task) when the record with this id
//                     passes the map, once: the marker file `fail_marker`
//                     records that it happened, so the restarted job goes on
//   fail_marker       path of that marker file
//   throttle_us       sleep this long per record (so checkpoints happen mid-stream)
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "connectors/connectors.h"
#include "engine/api/sluice.h"
#include "tests/kafka/test_record.h"

using sluice::kafka::testing::TestRecord;

SLUICE_JOB(kafka_test_job) {
  using namespace sluice;
  const std::string source_uri = args.require("source", "kafka://host:port/topic");
  const std::string sink_uri = args.require("sink", "file:///path or kafka://host:port/topic");
  const std::string dlq_uri = args.get("dlq", "stderr:");
  const int64_t sink_parallelism = args.get_int("sink_parallelism", 0);
  const int64_t fail_at_id = args.get_int("fail_at_id", -1);
  const std::string fail_marker = args.get("fail_marker", "");
  const int64_t throttle_us = args.get_int("throttle_us", 0);

  auto source = connectors::source_from_uri<TestRecord>(source_uri);
  if (!source.is_ok()) throw api::JobArgError("--arg source: " + source.status().message());
  auto sink = connectors::sink_from_uri<TestRecord>(sink_uri);
  if (!sink.is_ok()) throw api::JobArgError("--arg sink: " + sink.status().message());
  auto dlq = connectors::sink_from_uri<DeadLetter>(dlq_uri);
  if (!dlq.is_ok()) throw api::JobArgError("--arg dlq: " + dlq.status().message());
  env.set_dead_letter_sink(*dlq);

  auto records = env.from_source(*source, WatermarkStrategy<TestRecord>::no_watermarks(), "records");
  records.uid("records-source");
  auto mapped = records.map(
      [fail_at_id, fail_marker, throttle_us](const TestRecord& r) {
        if (throttle_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(throttle_us));
        if (r.id == fail_at_id && !fail_marker.empty() && !std::filesystem::exists(fail_marker)) {
          std::ofstream(fail_marker) << "failed once\n";
          throw std::runtime_error("injected failure at id " + std::to_string(r.id));
        }
        if (r.body == "reject") throw InvalidRecord("body is 'reject'");
        return r;
      },
      "check");
  mapped.uid("check");
  auto out = mapped.sink_to(*sink, "out");
  out.uid("out-sink");
  if (sink_parallelism > 0) out.set_parallelism(static_cast<int>(sink_parallelism));
}
