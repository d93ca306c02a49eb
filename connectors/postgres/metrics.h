// The Postgres sink's metric families in sluice::metrics::registry().
//
//   sluice_postgres_sink_rows_total{job,table}             counter (rows committed)
//   sluice_postgres_sink_commits_total{job,table,outcome}  counter (committed | skipped: already committed before a crash)
//   sluice_postgres_sink_retries_total{job,table}          counter (failed attempts that were retried)
//   sluice_postgres_sink_pending_rows{job,table,subtask}   gauge (rows held for checkpoints not yet committed)
//
// Families are created once per process; metrics are thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>

namespace sluice::postgres {

struct PostgresMetricFamilies {
  prometheus::Family<prometheus::Counter>& rows;
  prometheus::Family<prometheus::Counter>& commits;
  prometheus::Family<prometheus::Counter>& retries;
  prometheus::Family<prometheus::Gauge>& pending_rows;
};

PostgresMetricFamilies& postgres_metrics();

}  // namespace sluice::postgres
