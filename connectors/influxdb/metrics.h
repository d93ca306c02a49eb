// The InfluxDB sink's metric families in sluice::metrics::registry().
//
//   sluice_influxdb_sink_points_total{job,target}            counter (points the server accepted)
//   sluice_influxdb_sink_refused_points_total{job,target}    counter (points the server refused: dead letters)
//   sluice_influxdb_sink_retries_total{job,target}           counter (failed requests retried after a backoff)
//   sluice_influxdb_sink_bytes_total{job,target}             counter (request bodies sent, after gzip)
//   sluice_influxdb_sink_pending_points{job,target,subtask}  gauge (points held until the server accepts them)
//
// `target` is the database (1.x) or bucket (2.x). Families are created
// once per process; metrics are thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>

namespace sluice::influxdb {

struct InfluxMetricFamilies {
  prometheus::Family<prometheus::Counter>& points;
  prometheus::Family<prometheus::Counter>& refused;
  prometheus::Family<prometheus::Counter>& retries;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Family<prometheus::Gauge>& pending;
};

InfluxMetricFamilies& influx_metrics();

}  // namespace sluice::influxdb
