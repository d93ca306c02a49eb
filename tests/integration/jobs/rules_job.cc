// it_rules_job: spending alerts from rules broadcast to a keyed stream
// (spend_rules.h). Built for the broadcast-state tests, which stop it with
// a savepoint and restore it at another parallelism (run-local and the
// cluster) and compare the alerts with those the test computes.
//
// Input: spends {"user":..,"category":..,"amount":N} and rules
// {"id":..,"category":..,"threshold":N}, NDJSON. Output: one row per alert,
// {"user":..,"rule":..,"total":N}.
//
// Arguments (--arg key=value):
//   spends   file:///path.ndjson[?rate=N] (required)
//   rules    file:///path.ndjson[?rate=N] (required; read by one subtask)
//   sink     file:///path.ndjson, stdout: (default stdout:)
//   dlq      malformed lines (default stderr:)
#include "connectors/connectors.h"
#include "engine/api/sluice.h"
#include "tests/integration/jobs/spend_rules.h"

using sluice::it_jobs::Alert;
using sluice::it_jobs::Rule;
using sluice::it_jobs::Spend;
using sluice::api::or_arg_error;

SLUICE_JOB(it_rules_job) {
  using namespace sluice;
  auto spends_source = or_arg_error(connectors::source_from_uri<Spend>(args.require("spends", "file:///spends.ndjson")),
                                    "spends");
  auto rules_source = or_arg_error(connectors::source_from_uri<Rule>(args.require("rules", "file:///rules.ndjson")),
                                   "rules");
  auto sink = or_arg_error(connectors::sink_from_uri<Alert>(args.get("sink", "stdout:")), "sink");
  env.set_dead_letter_sink(or_arg_error(connectors::sink_from_uri<DeadLetter>(args.get("dlq", "stderr:")), "dlq"));

  auto spends = env.from_source(spends_source, WatermarkStrategy<Spend>::no_watermarks(), "spends");
  spends.uid("spends");
  auto rules = env.from_source(rules_source, WatermarkStrategy<Rule>::no_watermarks(), "rules");
  rules.uid("rules").set_parallelism(1);
  auto alerts = spends.key_by([](const Spend& s) { return s.user; })
                    .connect(rules.broadcast(it_jobs::kRules))
                    .process(it_jobs::Thresholds{}, "thresholds");
  alerts.uid("thresholds");
  alerts.sink_to(sink, "alerts").uid("alerts").set_parallelism(1);
}
