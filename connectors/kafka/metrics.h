// The Kafka connector's metric families in sluice::metrics::registry().
//
//   sluice_kafka_consumer_lag_records{job,topic,partition}       gauge
//   sluice_kafka_consumer_records_total{job,topic}               counter (fetch rate)
//   sluice_kafka_consumer_bytes_total{job,topic}                 counter (fetch bytes)
//   sluice_kafka_consumer_offset_out_of_range_total{job,topic,partition}  counter
//   sluice_kafka_consumer_commit_failures_total{job,group}       counter
//   sluice_kafka_producer_records_total{job,topic}               counter
//   sluice_kafka_producer_queue_messages{job,topic,subtask}      gauge
//   sluice_kafka_producer_delivery_errors_total{job,topic}       counter
//   sluice_kafka_transactions_total{job,topic,outcome}           counter (committed|aborted)
//   sluice_kafka_dlq_records_total{job,topic}                    counter
//
// Families are created once per process; metrics are thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>

namespace sluice::kafka {

/// The families above. One process-wide instance (kafka_metrics()).
struct KafkaMetricFamilies {
  prometheus::Family<prometheus::Gauge>& consumer_lag;
  prometheus::Family<prometheus::Counter>& consumer_records;
  prometheus::Family<prometheus::Counter>& consumer_bytes;
  prometheus::Family<prometheus::Counter>& offset_out_of_range;
  prometheus::Family<prometheus::Counter>& commit_failures;
  prometheus::Family<prometheus::Counter>& producer_records;
  prometheus::Family<prometheus::Gauge>& producer_queue;
  prometheus::Family<prometheus::Counter>& delivery_errors;
  prometheus::Family<prometheus::Counter>& transactions;
  prometheus::Family<prometheus::Counter>& dlq_records;
};

KafkaMetricFamilies& kafka_metrics();

}  // namespace sluice::kafka
