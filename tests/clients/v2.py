"""Drives the InfluxDB 2.x Python client (PyPI `influxdb-client`) against one API endpoint.

Writes the points with the client's synchronous write API (`/api/v2/write`, bucket = the
database, nanosecond precision, gzip on), then reads them back through the 1.x `/query`
endpoint with the standard library, trusting the same CA. The client's own query API speaks
Flux to `/api/v2/query`, which neither the gateway nor influxd 1.6 serves, so it cannot read.
The database must exist. See common.py for the command line and the output.
"""

import json
import ssl
import urllib.parse
import urllib.request

import influxdb_client
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

import common


def query(args, q):
    """GET /query as the 1.x API takes it, JSON with epoch-second times."""
    params = urllib.parse.urlencode({"db": args.db, "q": q, "epoch": "s"})
    req = urllib.request.Request(f"{args.url.rstrip('/')}/query?{params}")
    if args.username is not None:
        req.add_header("Authorization", f"Token {args.username}:{args.password}")
    # With a CA file only that CA is trusted; without one, the system's roots.
    context = ssl.create_default_context(cafile=args.ca) if args.url.startswith("https") else None
    with urllib.request.urlopen(req, timeout=30, context=context) as resp:
        body = json.load(resp)
    result = body["results"][0]
    if "error" in result:
        common.fail(f"query {q!r}: {result['error']}")
    rows = []
    for series in result.get("series", []):
        for values in series["values"]:
            rows.append(dict(zip(series["columns"], values)))
    return rows


def main():
    args = common.parse_args(__doc__)
    # InfluxDB 1.8's compatibility token: "user:password", or none without authentication.
    token = f"{args.username}:{args.password}" if args.username is not None else None
    written = common.points(args.points)
    with InfluxDBClient(
        url=args.url,
        token=token,
        org="-",
        timeout=30_000,
        enable_gzip=True,
        verify_ssl=True,
        ssl_ca_cert=args.ca,
    ) as client:
        records = [
            Point(args.measurement)
            .tag("host", p["host"])
            .field("value", p["value"])
            .field("count", p["count"])
            .field("label", p["label"])
            .field("ok", p["ok"])
            .time(p["time"] * 1_000_000_000, WritePrecision.NS)
            for p in written
        ]
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=args.db, record=records, write_precision=WritePrecision.NS
        )
    read = [common.normalise(r) for r in query(args, f'SELECT * FROM "{args.measurement}"')]
    common.finish(f"influxdb-client (Python) {influxdb_client.__version__}", args.url, written, read)


if __name__ == "__main__":
    common.run(main)
