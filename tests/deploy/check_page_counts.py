#!/usr/bin/env python3
"""Compares the clickstream job's page_counts table with counts computed here.

    check_page_counts.py REFERENCE --window-ms N [--below TS] [--from TS --to TS] [--wait S] -- COMMAND...

REFERENCE is the NDJSON the job read (`sluice gen ... --output`); the
expected rows are its valid events (what the clickstream job's `validate`
accepts: an object with a non-empty string page_url, a positive integer ts,
string user_id/event_type if present) counted per (window start, page_url).
COMMAND prints the table as `window_start<TAB>window_end<TAB>page_url<TAB>count`
lines (e.g. `psql -qAtX -F $'\\t' -c 'SELECT window_start, window_end,
page_url, count FROM page_counts'`). Rows of windows starting at or after
--below are ignored (events sent only to advance event time). With --from
and --to (a backfill's range) only events with from <= ts < to count. With --wait,
COMMAND is re-run every second until the rows are equal or S seconds pass.
Exit 0 if equal (no missing, extra or duplicate row, every window N ms long).
"""
import argparse
import collections
import json
import subprocess
import sys
import time


def reference(path, window_ms, lo=None, hi=None):
    want = collections.Counter()
    with open(path) as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if not isinstance(e, dict) or not isinstance(e.get("page_url"), str) or not e["page_url"]:
                continue
            ts = e.get("ts")
            if not isinstance(ts, int) or isinstance(ts, bool) or ts <= 0:
                continue
            if not isinstance(e.get("user_id", ""), str) or not isinstance(e.get("event_type", ""), str):
                continue
            if (lo is not None and ts < lo) or (hi is not None and ts >= hi):
                continue
            want[(ts - ts % window_ms, e["page_url"])] += 1
    return dict(want)


def table(command, window_ms, below):
    r = subprocess.run(command, capture_output=True, text=True)
    if r.returncode != 0:
        return None, "query failed: " + r.stderr.strip()
    got = {}
    for row in r.stdout.splitlines():
        ws, we, page, n = row.split("\t")
        ws, we = int(ws), int(we)
        if below is not None and ws >= below:
            continue
        if we - ws != window_ms:
            return None, "row of a %d ms window: %s" % (we - ws, row)
        if (ws, page) in got:
            return None, "duplicate row " + row
        got[(ws, page)] = int(n)
    return got, ""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reference")
    p.add_argument("--window-ms", type=int, required=True)
    p.add_argument("--below", type=int)
    p.add_argument("--wait", type=float, default=0)
    p.add_argument("--from", dest="lo", type=int)
    p.add_argument("--to", dest="hi", type=int)
    argv = sys.argv[1:]
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        p.error("-- COMMAND missing")
    a = p.parse_args(argv[:argv.index("--")])
    command = argv[argv.index("--") + 1:]
    want = reference(a.reference, a.window_ms, a.lo, a.hi)
    deadline = time.time() + a.wait
    while True:
        got, err = table(command, a.window_ms, a.below)
        if got == want:
            print("page_counts: %d rows, %d clicks, equal to the reference" % (len(got), sum(got.values())))
            return 0
        if time.time() >= deadline:
            break
        time.sleep(1)
    if got is None:
        print(err, file=sys.stderr)
        return 1
    bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    print("rows: got %d (%d clicks) want %d (%d clicks); %d differ, e.g. %s" % (
        len(got), sum(got.values()), len(want), sum(want.values()), len(bad),
        [(k, got.get(k), want.get(k)) for k in bad[:5]]), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
