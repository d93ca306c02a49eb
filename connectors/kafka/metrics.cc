#include "connectors/kafka/metrics.h"

#include "engine/common/metrics.h"

namespace sluice::kafka {

KafkaMetricFamilies& kafka_metrics() {
  static KafkaMetricFamilies* f = [] {
    auto& r = metrics::registry();
    return new KafkaMetricFamilies{
        prometheus::BuildGauge()
            .Name("sluice_kafka_consumer_lag_records")
            .Help("Records between a source's position and the partition's high watermark")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_kafka_consumer_records_total")
            .Help("Records fetched by Kafka sources")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_kafka_consumer_bytes_total")
            .Help("Key and value bytes fetched by Kafka sources")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_kafka_consumer_offset_out_of_range_total")
            .Help("Times a source's position was no longer (or not yet) in its partition")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_kafka_consumer_commit_failures_total")
            .Help("Failed commits of checkpointed source offsets to Kafka")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_kafka_producer_records_total")
            .Help("Records acknowledged by Kafka for Kafka sinks")
            .Register(r),
        prometheus::BuildGauge()
            .Name("sluice_kafka_producer_queue_messages")
            .Help("Messages waiting in a sink's producer queue (not yet acknowledged)")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_kafka_producer_delivery_errors_total")
            .Help("Messages Kafka did not accept (each fails its task)")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_kafka_transactions_total")
            .Help("Kafka transactions of exactly-once sinks, by outcome (committed, aborted)")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_kafka_dlq_records_total")
            .Help("Dead letters written to a Kafka dead-letter topic")
            .Register(r),
    };
  }();
  return *f;
}

}  // namespace sluice::kafka
