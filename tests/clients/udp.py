"""Drives the InfluxDB 1.x Python client (PyPI `influxdb`) in its UDP mode against one node.

`write_points` with `use_udp=True` sends the points as one line protocol datagram to the
node's UDP listener (`--udp-port`), at second precision (the listener must be started with
`udp_precision = "s"`: a datagram carries no precision). The client gets no answer, so it then
reads back through the same node's HTTP API with `query` until the points are there. See
common.py for the command line and the output; the database is the listener's.
"""

import time
import urllib.parse

import influxdb

import common

# The listener batches for up to its batch timeout before the points go through the log.
READ_BACK_WITHIN = 30


def main():
    args = common.parse_args(__doc__, udp=True)
    url = urllib.parse.urlsplit(args.url)
    if url.scheme != "http":
        common.fail("UDP has no TLS: --url must be http://")
    client = influxdb.InfluxDBClient(
        host=url.hostname,
        port=url.port or 8086,
        username=args.username,
        password=args.password,
        database=args.db,
        timeout=30,
        retries=1,
        use_udp=True,
        udp_port=args.udp_port,
    )
    written = common.points(args.points)
    client.write_points(
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
    deadline = time.monotonic() + READ_BACK_WITHIN
    while True:
        result = client.query(f'SELECT * FROM "{args.measurement}"', epoch="s")
        read = [common.normalise(r) for r in result.get_points()]
        if len(read) >= len(written) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    common.finish(f"influxdb (Python, UDP) {influxdb.__version__}", args.url, written, read)


if __name__ == "__main__":
    common.run(main)
