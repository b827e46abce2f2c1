"""Drives the InfluxDB 1.x Python client (PyPI `influxdb`) against one API endpoint.

Creates the database (a state-changing query: it goes through the log), writes the points with
`write_points` at second precision, and reads them back with `query`, all with `gzip=True`.
See common.py for the command line and the output.
"""

import urllib.parse

import influxdb

import common


def main():
    args = common.parse_args(__doc__)
    url = urllib.parse.urlsplit(args.url)
    https = url.scheme == "https"
    client = influxdb.InfluxDBClient(
        host=url.hostname,
        port=url.port or 8086,
        # The client sends root:root unless told otherwise.
        username=args.username,
        password=args.password,
        database=args.db,
        ssl=https,
        # A CA file, or the system's roots: never unverified.
        verify_ssl=args.ca if args.ca else https,
        timeout=30,
        # One attempt: a failure is the answer under test, not something to retry past.
        retries=1,
        # Compressed writes, and every query labelled gzip with no body: what influxd accepts
        # and users of this option send.
        gzip=True,
    )
    client.create_database(args.db)
    written = common.points(args.points)
    ok = client.write_points(
        [
            {
                "measurement": args.measurement,
                "tags": {"host": p["host"]},
                "time": p["time"],
                "fields": {k: p[k] for k in ("value", "count", "label", "ok")},
            }
            for p in written
        ],
        time_precision="s",
    )
    if not ok:
        common.fail("write_points returned False")
    result = client.query(f'SELECT * FROM "{args.measurement}"', epoch="s")
    read = [common.normalise(r) for r in result.get_points()]
    common.finish(f"influxdb (Python) {influxdb.__version__}", args.url, written, read)


if __name__ == "__main__":
    common.run(main)
