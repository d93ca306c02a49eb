#!/usr/bin/env python3
"""Writes the Grafana dashboards of deploy/grafana/dashboards/*.json.

The JSON files are what Grafana loads (provisioning) and what
tests/deploy checks: every PromQL query must return data from a real
Prometheus scraping a local cluster, every SQL query must run on Postgres,
every InfluxQL query on InfluxDB.
Edit the panels here and rerun: python3 deploy/grafana/make_dashboards.py
"""
import json
import os

PROM = {"type": "prometheus", "uid": "sluice-prometheus"}
PG = {"type": "postgres", "uid": "sluice-postgres"}
INFLUX = {"type": "influxdb", "uid": "sluice-influxdb"}
HERE = os.path.dirname(os.path.abspath(__file__))


def panel(pid, title, targets, unit="short", kind="timeseries", x=0, y=0, w=12, h=8, ds=PROM, desc=""):
    p = {
        "id": pid, "type": kind, "title": title, "description": desc, "datasource": ds,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": targets,
    }
    return p


def prom(expr, legend, ref="A", instant=False):
    t = {"refId": ref, "datasource": PROM, "expr": expr, "legendFormat": legend, "range": not instant}
    if instant:
        t["instant"] = True
    return t


def sql(query, ref="A", fmt="time_series"):
    return {"refId": ref, "datasource": PG, "rawQuery": True, "editorMode": "code", "format": fmt, "rawSql": query}


def influxql(query, ref="A", alias="", fmt="time_series"):
    return {"refId": ref, "datasource": INFLUX, "rawQuery": True, "query": query, "alias": alias,
            "resultFormat": fmt}


def dashboard(uid, title, panels, refresh="10s", time_from="now-30m"):
    return {
        "uid": uid, "title": title, "tags": ["sluice"], "timezone": "browser", "schemaVersion": 38,
        "version": 1, "editable": True, "refresh": refresh,
        "time": {"from": time_from, "to": "now"}, "panels": panels,
        "templating": {"list": []}, "annotations": {"list": []},
    }


health = dashboard("sluice-pipeline-health", "Sluice — pipeline health", [
    panel(1, "Throughput: records out per second", [
        prom('sum by (job, vertex) (rate(sluice_task_records_out_total[1m]))', "{{job}} {{vertex}}")],
        unit="ops", x=0, y=0),
    panel(2, "Kafka consumer lag (records)", [
        prom('sum by (job, topic, partition) (sluice_kafka_consumer_lag_records)', "{{topic}}/{{partition}}")],
        x=12, y=0),
    panel(3, "Backpressure: share of time blocked on output", [
        prom('sum by (job, vertex) (rate(sluice_task_backpressured_seconds_total[1m]))', "{{job}} {{vertex}}")],
        unit="percentunit", x=0, y=8),
    panel(4, "Watermark lag", [
        prom('max by (job, vertex) (sluice_task_watermark_lag_seconds)', "{{job}} {{vertex}}")],
        unit="s", x=12, y=8),
    panel(5, "Checkpoint duration and alignment (latest)", [
        prom('max by (job) (sluice_checkpoint_last_duration_seconds)', "{{job}} duration", "A"),
        prom('max by (job) (sluice_checkpoint_last_alignment_seconds)', "{{job}} alignment", "B")],
        unit="s", x=0, y=16),
    panel(6, "Checkpoints completed and failed (per 5 min)", [
        prom('sum by (job) (increase(sluice_checkpoints_completed_total[5m]))', "{{job}} completed", "A"),
        prom('sum by (job) (increase(sluice_checkpoints_failed_total[5m]))', "{{job}} failed", "B")],
        x=12, y=16),
    panel(7, "End-to-end latency (event time to sink)", [
        prom('histogram_quantile(0.5, sum by (job, sink, le) (rate(sluice_end_to_end_latency_seconds_bucket[1m])))',
             "p50 {{job}} {{sink}}", "A"),
        prom('histogram_quantile(0.95, sum by (job, sink, le) (rate(sluice_end_to_end_latency_seconds_bucket[1m])))',
             "p95 {{job}} {{sink}}", "B"),
        prom('histogram_quantile(0.99, sum by (job, sink, le) (rate(sluice_end_to_end_latency_seconds_bucket[1m])))',
             "p99 {{job}} {{sink}}", "C")],
        unit="s", x=0, y=24),
    panel(8, "Job restarts", [
        prom('sum by (job) (sluice_job_restarts_total)', "{{job}}")], x=12, y=24),
    panel(9, "Checkpoint size (latest)", [
        prom('max by (job) (sluice_checkpoint_last_size_bytes)', "{{job}}")], unit="bytes", x=0, y=32),
    panel(10, "Dead letters per second", [
        prom('sum by (job, vertex) (rate(sluice_task_dead_letters_total[1m]))', "{{job}} {{vertex}}")],
        unit="ops", x=12, y=32),
    panel(11, "Process resident memory", [
        prom('process_resident_memory_bytes{role=~"jobmanager|taskmanager"}', "{{role}} {{instance}}")],
        unit="bytes", x=0, y=40),
    panel(12, "Process CPU (cores)", [
        prom('rate(process_cpu_seconds_total{role=~"jobmanager|taskmanager"}[1m])', "{{role}} {{instance}}")],
        x=12, y=40),
    panel(13, "Cluster slots", [
        prom('sum(sluice_jobmanager_slots_used)', "used", "A"),
        prom('sum(sluice_jobmanager_slots)', "offered", "B"),
        prom('sum(sluice_jobmanager_taskmanagers)', "taskmanagers", "C")], x=0, y=48),
    panel(14, "Results metric series dropped by the cardinality limit", [
        prom('sum by (metric) (sluice_prometheus_sink_series_dropped_total)', "{{metric}}")], x=12, y=48),
])

WINDOW = "window_start >= $__unixEpochFrom()::bigint * 1000 AND window_start < $__unixEpochTo()::bigint * 1000"
results = dashboard("sluice-clickstream-results", "Sluice — clickstream results", [
    panel(1, "Clicks per page per minute (top 10 pages)", [sql(
        "SELECT to_timestamp(window_start / 1000.0) AS time, page_url AS metric, count AS value\n"
        "FROM page_counts\nWHERE " + WINDOW + "\n"
        "  AND page_url IN (SELECT page_url FROM page_counts WHERE " + WINDOW + "\n"
        "                   GROUP BY page_url ORDER BY sum(count) DESC LIMIT 10)\nORDER BY 1, 2")],
        ds=PG, x=0, y=0, w=24, h=10),
    panel(2, "Clicks per minute (all pages)", [sql(
        "SELECT to_timestamp(window_start / 1000.0) AS time, sum(count) AS clicks\n"
        "FROM page_counts\nWHERE " + WINDOW + "\nGROUP BY window_start\nORDER BY 1")],
        ds=PG, x=0, y=10, w=12, h=8),
    panel(3, "Latest complete window: busiest pages", [sql(
        "SELECT to_timestamp(window_start / 1000.0) AS window, page_url, count\n"
        "FROM page_counts\nWHERE window_start = (SELECT max(window_start) FROM page_counts)\n"
        "ORDER BY count DESC, page_url\nLIMIT 20", fmt="table")],
        kind="table", ds=PG, x=12, y=10, w=12, h=8),
    panel(4, "Live: clicks per page in the latest window (Prometheus results sink)", [
        prom('topk(10, sum by (page_url) (clicks_per_page))', "{{page_url}}")], x=0, y=18, w=24, h=8),
], refresh="30s", time_from="now-1h")

# sessions_funnel: the funnel from the job's Prometheus counters (corrections
# by late and out-of-order events are counted apart, as counters only grow),
# the sessions from Postgres, and the push sink's delivery.
def funnel_range(kind):
    return ('sum by (step, step_name) (increase(sluice_funnel_users_total{kind="%s"}[$__range]))\n'
            '- sum by (step, step_name) (increase(sluice_funnel_users_withdrawn_total{kind="%s"}[$__range]))'
            % (kind, kind))


def bar(p):
    p["options"] = {"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return p


SESSIONS = "session_start >= $__unixEpochFrom()::bigint * 1000 AND session_start < $__unixEpochTo()::bigint * 1000"
funnel = dashboard("sluice-sessions-funnel", "Sluice — sessions and funnel", [
    bar(panel(1, "Funnel: sessions that reached each step (time range)", [
        prom(funnel_range("entered"), "{{step}} {{step_name}}", instant=True)],
        kind="bargauge", x=0, y=0, w=12, h=8,
        desc="Sessions entering each step in order (home, product, cart, checkout) within the dashboard's range")),
    bar(panel(2, "Drop-off: sessions that ended at each step (time range)", [
        prom(funnel_range("dropped"), "{{step}} {{step_name}}", instant=True)],
        kind="bargauge", x=12, y=0, w=12, h=8,
        desc="Sessions whose furthest step was this one when they ended (no event for the session gap)")),
    panel(3, "Sessions entering each step per minute", [
        prom('sum by (step, step_name) (rate(sluice_funnel_users_total{kind="entered"}[2m])) * 60',
             "{{step}} {{step_name}}")], x=0, y=8),
    panel(4, "Drop-offs per minute by step", [
        prom('sum by (step, step_name) (rate(sluice_funnel_users_total{kind="dropped"}[2m])) * 60',
             "{{step}} {{step_name}}")], x=12, y=8),
    bar(panel(5, "Live: sessions entering each step in the current minute", [
        prom('sum by (step, step_name) (sluice_funnel_minute_entered)', "{{step}} {{step_name}}", instant=True)],
        kind="bargauge", x=0, y=16, w=12, h=8)),
    panel(6, "Funnel push API: batches per second by outcome, and waiting", [
        prom('sum by (outcome) (rate(sluice_push_sink_batches_total[1m]))', "{{outcome}}", "A"),
        prom('sum(sluice_push_sink_pending_batches)', "waiting", "B")], x=12, y=16),
    panel(7, "Sessions per minute, and converted (Postgres)", [sql(
        "SELECT to_timestamp((session_start / 60000) * 60) AS time, count(*) AS sessions,\n"
        "       sum(converted::int) AS converted\n"
        "FROM sessions\nWHERE " + SESSIONS + "\nGROUP BY 1\nORDER BY 1")],
        ds=PG, x=0, y=24),
    panel(8, "Furthest step reached (Postgres, time range)", [sql(
        "SELECT CASE WHEN furthest_step < 0 THEN 'not in the funnel'\n"
        "            ELSE furthest_step || ' ' || furthest_step_name END AS step,\n"
        "       count(*) AS sessions, round(avg(duration_ms) / 1000.0, 1) AS avg_seconds,\n"
        "       round(avg(events), 1) AS avg_events, round(100.0 * avg(converted::int), 1) AS converted_pct\n"
        "FROM sessions\nWHERE " + SESSIONS + "\nGROUP BY furthest_step, furthest_step_name\nORDER BY furthest_step",
        fmt="table")], kind="table", ds=PG, x=12, y=24),
], refresh="10s", time_from="now-1h")

# The same results from InfluxDB (the clickstream job with
# sink=influxdb://...?measurement=page_counts&tags=page_url&fields=count&time=window_start).
results_influx = dashboard("sluice-clickstream-results-influxdb", "Sluice — clickstream results (InfluxDB)", [
    panel(1, "Clicks per page per window", [influxql(
        'SELECT "count" FROM "page_counts" WHERE $timeFilter GROUP BY "page_url"', alias="$tag_page_url")],
        ds=INFLUX, x=0, y=0, w=24, h=10),
    panel(2, "Clicks per minute (all pages)", [influxql(
        'SELECT sum("count") AS "clicks" FROM "page_counts" WHERE $timeFilter GROUP BY time(1m) fill(none)',
        alias="clicks")],
        ds=INFLUX, x=0, y=10, w=12, h=8),
    panel(3, "Busiest pages in the time range", [influxql(
        'SELECT sum("count") AS "clicks" FROM "page_counts" WHERE $timeFilter GROUP BY "page_url"',
        fmt="table")],
        kind="table", ds=INFLUX, x=12, y=10, w=12, h=8),
], refresh="30s", time_from="now-1h")

# fraud: the job's decisions (sluice_fraud_decisions_total{rule, alert,
# scored}) and the time from a decision to its score
# (sluice_fraud_scoring_seconds), from every taskmanager's /metrics.
fraud = dashboard("sluice-fraud", "Sluice — fraud", [
    panel(1, "Alerts per minute by rule", [
        prom('sum by (rule) (rate(sluice_fraud_decisions_total{alert="true"}[2m])) * 60', "{{rule}}")],
        unit="short", x=0, y=0,
        desc="Alerting decisions per minute (Kafka and the SIEMs get each once per alert id)"),
    panel(2, "Scoring latency (decision to score or giving up)", [
        prom('histogram_quantile(0.5, sum by (le) (rate(sluice_fraud_scoring_seconds_bucket[2m])))', "p50"),
        prom('histogram_quantile(0.99, sum by (le) (rate(sluice_fraud_scoring_seconds_bucket[2m])))', "p99", ref="B")],
        unit="s", x=12, y=0),
    panel(3, "Decisions per minute: scored or unscored (scorer down or slow)", [
        prom('sum by (scored) (rate(sluice_fraud_decisions_total[2m])) * 60', "scored={{scored}}")],
        unit="short", x=0, y=8),
    panel(4, "Decisions by rule (time range)", [
        prom('sum by (rule, alert) (increase(sluice_fraud_decisions_total[$__range]))', "{{rule}} alert={{alert}}",
             instant=True)],
        kind="bargauge", x=12, y=8),
], refresh="10s", time_from="now-1h")

os.makedirs(os.path.join(HERE, "dashboards"), exist_ok=True)
for name, d in (("pipeline-health.json", health), ("clickstream-results.json", results),
                ("clickstream-results-influxdb.json", results_influx), ("sessions-funnel.json", funnel),
                ("fraud.json", fraud)):
    with open(os.path.join(HERE, "dashboards", name), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
