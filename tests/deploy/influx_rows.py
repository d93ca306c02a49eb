#!/usr/bin/env python3
"""InfluxQL against deploy/local's InfluxDB (up.sh --influxdb), for the deploy tests.

    influx_rows.py QUERY            every row of the answer, values tab-separated (time in ms first)
    influx_rows.py --dashboards DIR every InfluxQL query of DIR's Grafana dashboards, $timeFilter
                                    set to the time range of page_counts; exit 1 unless each returns rows

The server, database and admin password come from the environment that
deploy/local's env file sets: INFLUXDB_URL, INFLUXDB_DATABASE,
INFLUXDB_PASSWORD_FILE (user admin). A row query prints what
check_page_counts.py reads, e.g.
`SELECT "window_end", "page_url", "count" FROM page_counts`.
"""
import base64
import glob
import json
import os
import sys
import urllib.parse
import urllib.request


def query(q):
    url, db = os.environ["INFLUXDB_URL"], os.environ["INFLUXDB_DATABASE"]
    with open(os.environ["INFLUXDB_PASSWORD_FILE"]) as f:
        auth = base64.b64encode(("admin:" + f.read().strip()).encode()).decode()
    req = urllib.request.Request(url + "/query?" + urllib.parse.urlencode({"db": db, "epoch": "ms", "q": q}),
                                 headers={"Authorization": "Basic " + auth})
    with urllib.request.urlopen(req, timeout=10) as r:
        res = json.load(r)["results"][0]
    if "error" in res:
        raise RuntimeError(res["error"])
    return res.get("series", [])


def dashboards(d):
    times = [row[0] for s in query('SELECT "count" FROM page_counts') for row in s["values"]]
    if not times:
        print("page_counts is empty", file=sys.stderr)
        return 1
    window = "time >= %dms AND time <= %dms" % (min(times), max(times))
    n = 0
    for f in sorted(glob.glob(os.path.join(d, "*.json"))):
        with open(f) as fh:
            panels = json.load(fh)["panels"]
        for p in panels:
            for t in p.get("targets", []):
                if t.get("datasource", {}).get("type") != "influxdb":
                    continue
                where = "%s / %s" % (os.path.basename(f), p["title"])
                try:
                    rows = sum(len(s["values"]) for s in query(t["query"].replace("$timeFilter", window)))
                except Exception as e:  # a malformed query never gets better
                    print("%s: %s" % (where, e), file=sys.stderr)
                    return 1
                if not rows:
                    print("%s: no rows" % where, file=sys.stderr)
                    return 1
                n += 1
    print("%d InfluxQL queries returned rows" % n)
    return 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--dashboards":
        return dashboards(sys.argv[2])
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    for s in query(sys.argv[1]):
        for row in s["values"]:
            print("\t".join(str(v) for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
