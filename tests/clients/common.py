"""What the Python client drivers share: the command line, the points, and how a run ends.

Every driver writes the same points (`points`) with its client's own write API, reads them
back, and prints one JSON object on stdout:

    {"client": "...", "url": "...", "written": [...], "read": [...]}

each point as {"time": <epoch seconds>, "host", "value", "count", "label", "ok"}. Any failure,
the read-back differing from what was written included, is one line on stderr and exit 1.
"""

import argparse
import json
import sys
import urllib.parse

# Whole seconds, so that every precision a client may write in represents them exactly.
BASE_TIME = 1_700_000_000


def parse_args(description, udp=False):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", required=True, help="the API: http://HOST:PORT or https://HOST:PORT")
    p.add_argument(
        "--ca",
        help="PEM file of the CA the server's certificate must chain to (https only; the "
        "system's roots are not trusted then). Certificates are always verified.",
    )
    p.add_argument("--db", required=True, help="the database")
    p.add_argument("--measurement", required=True)
    p.add_argument("--points", type=int, default=3, help="how many points to write")
    p.add_argument("--username")
    p.add_argument("--password")
    if udp:
        p.add_argument("--udp-port", type=int, required=True, help="the node's UDP listener")
    args = p.parse_args()
    url = urllib.parse.urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        fail(f"--url must be http://HOST:PORT or https://HOST:PORT, not {args.url!r}")
    if args.ca and url.scheme != "https":
        fail("--ca is for an https URL")
    if (args.username is None) != (args.password is None):
        fail("--username and --password go together")
    return args


def points(n):
    """The points a driver writes, in the shape the drivers print."""
    return [
        {
            "time": BASE_TIME + i,
            "host": f"h{i}",
            "value": i + 0.5,
            "count": i,
            "label": f"point {i}",
            "ok": i % 2 == 0,
        }
        for i in range(n)
    ]


def normalise(row):
    """A row read back (epoch seconds) in the shape of `points`."""
    return {k: row.get(k) for k in ("time", "host", "value", "count", "label", "ok")}


def finish(client, url, written, read):
    read = sorted(read, key=lambda p: p["time"])
    if read != written:
        fail(f"read back {json.dumps(read)}, wrote {json.dumps(written)}")
    json.dump({"client": client, "url": url, "written": written, "read": read}, sys.stdout)
    print()


def fail(message):
    print(f"{sys.argv[0]}: {message}", file=sys.stderr)
    sys.exit(1)


def run(main):
    """Runs `main`, making any exception one clear line and exit 1."""
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - every failure must become exit 1
        # Some clients' messages span lines (status, headers, body): keep it one line.
        fail(f"{type(e).__name__}: " + "; ".join(str(e).strip().splitlines()))
