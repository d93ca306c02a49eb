"""Nightly backfill of the clickstream job for yesterday (Kappa architecture).

The same job that runs live (Kafka -> clicks per page per minute ->
Postgres) is re-run over one day of history: Kafka is read by timestamp a
little wider than the day (stragglers), the job keeps the events of the day
(--arg from/to), and the Postgres sink upserts on (window_start, page_url),
so a re-run overwrites the day's rows instead of adding to them. Run it
after a change of logic, or to repair a day, with
`airflow dags backfill -s 2026-12-01 -e 2026-12-07 sluice_clickstream_backfill`.

Only BashOperator and the `sluice` CLI. The Airflow worker's environment
provides the cluster (what `. /tmp/sluice-local/env` exports for the local
cluster of deploy/local):
  SLUICE_BIN          the sluice binary (default: sluice on PATH)
  CLICKSTREAM_JOB     the job library, e.g. /opt/sluice/jobs/libclickstream.so
  SLUICE_JOBMANAGER   jobmanager host:port
  SLUICE_TOKEN_FILE   file with the cluster token (or SLUICE_TOKEN)
  KAFKA_BOOTSTRAP     Kafka host:port
  PGHOST PGPORT PGUSER PGDATABASE, PGPASSWORD or ~/.pgpass   the results database
  BACKFILL_PARALLELISM (default 2), BACKFILL_TIMEOUT (default 2h)
  BACKFILL_KAFKA_BOUNDS  what to read of Kafka (default: by time, the day and
                       5 minutes on each side); `start=earliest&stop=latest`
                       reads the whole topic (a broker that cannot look up
                       offsets by time, such as `sluice dev-kafka`)
"""
from __future__ import annotations

import datetime

from airflow import DAG
from airflow.operators.bash import BashOperator

# The day is [{{ ds }}T00:00Z, next day 00:00Z): whole one-minute windows.
# Kafka is read 5 minutes wider on each side; the job keeps only the day.
# `submit --wait` exits 0 only when the job FINISHED; its last line on
# stdout is the job id, which Airflow keeps as the task's XCom.
BACKFILL = r"""
set -euo pipefail
day="{{ ds }}"
next_day="{{ macros.ds_add(ds, 1) }}"
read_from=$(date -u -d "$day 00:00:00 UTC - 5 minutes" +%Y-%m-%dT%H:%M:%SZ)
read_to=$(date -u -d "$next_day 00:00:00 UTC + 5 minutes" +%Y-%m-%dT%H:%M:%SZ)
bounds=${BACKFILL_KAFKA_BOUNDS:-start=ts:$read_from&stop=ts:$read_to}
"${SLUICE_BIN:-sluice}" submit "$CLICKSTREAM_JOB" --wait --cancel-on-interrupt \
  --timeout "${BACKFILL_TIMEOUT:-2h}" --parallelism "${BACKFILL_PARALLELISM:-2}" --checkpoint-interval 10s \
  --arg "source=kafka://$KAFKA_BOOTSTRAP/clicks?$bounds&commit=false" \
  --arg "from=${day}T00:00:00Z" --arg "to=${next_day}T00:00:00Z" \
  --arg "sink=postgres://$PGUSER@$PGHOST:$PGPORT/$PGDATABASE?table=page_counts&mode=upsert&key=window_start,page_url&create_table=true&sink_id=clickstream-backfill-$day" \
  --arg dlq=stderr:
"""

# The day's rows in Postgres must be exactly the windows the job wrote: none
# missing (a partial commit) and none extra (a double count, or rows of an
# older logic that this run no longer produces).
CHECK_ROWS = r"""
set -euo pipefail
job="{{ ti.xcom_pull(task_ids='backfill') }}"
from_ms=$(( $(date -u -d "{{ ds }}" +%s) * 1000 ))
to_ms=$(( $(date -u -d "{{ macros.ds_add(ds, 1) }}" +%s) * 1000 ))
written=$("${SLUICE_BIN:-sluice}" status "$job" -o json | python3 -c '
import json, sys
job = json.load(sys.stdin)
if job["state"] != "FINISHED":
    sys.exit("job %s is %s" % (job["id"], job["state"]))
print(sum(v["records_in"] for v in job["vertices"] if v["name"] == "results"))')
rows=$(psql -qAtX -v ON_ERROR_STOP=1 -c \
  "SELECT count(*) FROM page_counts WHERE window_start >= $from_ms AND window_start < $to_ms")
echo "{{ ds }}: job $job wrote $written rows; page_counts holds $rows for the day"
if [ "$rows" -eq 0 ]; then echo "no results for {{ ds }}" >&2; exit 1; fi
if [ "$rows" -ne "$written" ]; then echo "page_counts holds $rows rows for {{ ds }}, the job wrote $written" >&2; exit 1; fi
"""

with DAG(
    dag_id="sluice_clickstream_backfill",
    description="Re-run the clickstream job over yesterday's clicks and check its results",
    schedule="@daily",
    start_date=datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": datetime.timedelta(minutes=5)},
    tags=["sluice", "backfill"],
) as dag:
    backfill = BashOperator(task_id="backfill", bash_command=BACKFILL,
                            execution_timeout=datetime.timedelta(hours=3))
    check_rows = BashOperator(task_id="check_rows", bash_command=CHECK_ROWS)
    backfill >> check_rows
