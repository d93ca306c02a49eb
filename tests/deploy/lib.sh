# Shell helpers of the deploy tests (sourced by deploy_test.sh and
# docker_test.sh): steps, the jobmanager's HTTP job status, paced Kafka input
# and the event-time flush. Needs curl, python3 and kcat.
T0=$(date +%s)
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== [$(( $(date +%s) - T0 ))s] $*"; }

# job_field HTTP JOB EXPR: EXPR (Python, on the job's JSON `j`) of /jobs/JOB.
job_field() {
  curl -sf "$1/jobs/$2" | python3 -c "import json, sys; j = json.load(sys.stdin); print($3)"
}

# wait_job_end HTTP JOB SECONDS: waits until JOB is FINISHED, FAILED or
# CANCELED and prints that state (or the last one seen).
wait_job_end() {
  local state="" i
  for ((i = 0; i < $3 * 10; i++)); do
    state=$(job_field "$1" "$2" 'j["state"]' 2>/dev/null || true)
    case "$state" in FINISHED|FAILED|CANCELED) break ;; esac
    sleep 0.1
  done
  echo "$state"
}

# feed_paced BOOTSTRAP TOPIC FILE LOG: sends FILE's lines to TOPIC in 12
# chunks 0.7 s apart with kcat (a client Sluice did not write), in the
# background; FEED_PID is its pid.
feed_paced() {
  local chunks
  chunks=$(mktemp -d "${TMPDIR:-/tmp}/sluice-feed.XXXXXX")
  split -n l/12 -d "$3" "$chunks/c."
  ( trap 'rm -rf "$chunks"' EXIT
    for f in "$chunks"/c.*; do kcat -P -b "$1" -t "$2" < "$f" || exit 1; sleep 0.7; done ) >"$4" 2>&1 &
  FEED_PID=$!
}

# flush_event_time SLUICE BOOTSTRAP TOPIC START_TS FILE: 100 events from
# START_TS on, to every partition of TOPIC, so event time passes every
# earlier window (the watermark is the minimum over partitions, and a
# producer's sticky partitioner may put a small burst in one).
flush_event_time() {
  "$1" gen --count 100 --seed 3 --pages 20 --start-ts "$4" --events-per-second 100 \
    --out-of-order 0 --late 0 --malformed 0 --output "$5" 2>/dev/null || fail "gen for the flush failed"
  local parts p
  parts=$(kcat -L -b "$2" -t "$3" 2>/dev/null | grep -c "partition ")
  [ "$parts" -ge 1 ] || fail "cannot read the partitions of $3"
  for ((p = 0; p < parts; p++)); do
    kcat -P -b "$2" -t "$3" -p "$p" < "$5" || fail "flush to partition $p of $3 failed"
  done
}

# gen_batch SLUICE SEED START_TS FILE [BOOTSTRAP TOPIC]: the tests' reference
# batch — 6000 seeded clicks on 20 pages from START_TS, 100 per second of
# event time, 10 % out of order by up to 1 s, 1 % malformed — into FILE (the
# reference) and, given BOOTSTRAP, the same events into TOPIC.
gen_batch() {
  local args=(--count 6000 --seed "$2" --pages 20 --start-ts "$3" --events-per-second 100
              --out-of-order 0.1 --max-delay 1s --late 0 --malformed 0.01)
  "$1" gen "${args[@]}" --output "$4" 2>/dev/null || fail "gen --output $4 failed"
  if [ $# -ge 6 ]; then
    "$1" gen "${args[@]}" --kafka "$5" --topic "$6" 2>&1 | grep -q "produced 6000" \
      || fail "gen --kafka did not produce 6000 messages to $6"
  fi
}
