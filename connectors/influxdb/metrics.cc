#include "connectors/influxdb/metrics.h"

#include "engine/common/metrics.h"

namespace sluice::influxdb {

InfluxMetricFamilies& influx_metrics() {
  static InfluxMetricFamilies* f = [] {
    auto& r = metrics::registry();
    auto counter = [&](const char* name, const char* help) -> prometheus::Family<prometheus::Counter>& {
      return prometheus::BuildCounter().Name(name).Help(help).Register(r);
    };
    return new InfluxMetricFamilies{
        counter("sluice_influxdb_sink_points_total", "Points InfluxDB sinks wrote and the server accepted"),
        counter("sluice_influxdb_sink_refused_points_total",
                "Points the InfluxDB server refused (sent to the dead-letter output)"),
        counter("sluice_influxdb_sink_retries_total", "Failed InfluxDB write requests retried after a backoff"),
        counter("sluice_influxdb_sink_bytes_total", "Bytes of InfluxDB write request bodies sent (after gzip)"),
        prometheus::BuildGauge()
            .Name("sluice_influxdb_sink_pending_points")
            .Help("Points an InfluxDB sink subtask holds until the server accepts them")
            .Register(r),
    };
  }();
  return *f;
}

}  // namespace sluice::influxdb
