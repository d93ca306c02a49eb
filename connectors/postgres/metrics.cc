#include "connectors/postgres/metrics.h"

#include "engine/common/metrics.h"

namespace sluice::postgres {

PostgresMetricFamilies& postgres_metrics() {
  static PostgresMetricFamilies* f = [] {
    auto& r = metrics::registry();
    return new PostgresMetricFamilies{
        prometheus::BuildCounter()
            .Name("sluice_postgres_sink_rows_total")
            .Help("Rows committed to PostgreSQL by Postgres sinks")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_postgres_sink_commits_total")
            .Help("Batches of Postgres sinks by outcome (committed, skipped: found committed on recovery)")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_postgres_sink_retries_total")
            .Help("Failed PostgreSQL attempts of Postgres sinks that were retried after a backoff")
            .Register(r),
        prometheus::BuildGauge()
            .Name("sluice_postgres_sink_pending_rows")
            .Help("Rows a Postgres sink subtask holds for checkpoints not yet committed")
            .Register(r),
    };
  }();
  return *f;
}

}  // namespace sluice::postgres
