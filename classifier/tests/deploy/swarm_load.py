"""Uploads while the cluster changes under them, for `make swarm-test`.

`run`: one user signs up through nginx, then N clients upload photos for a
while, each upload tagged `POST /?upload=<n>` so that the web replica which
served it can be found in its own access log. Nothing is retried: every
answer but the redirect to the result, and every connection error, is a
failure, printed with its time. The records go to a JSON file.

`check`: the records against what the stack kept: rows in the database,
photos in the bucket, and for every upload that started after the model
switch, the version that answered and the replica that served it.

    python -m classifier.tests.deploy.swarm_load run --https https://localhost:8443 \\
        --cafile cert.pem --clients 8 --seconds 60 [--until-file done] --out records.json
    python -m classifier.tests.deploy.swarm_load check --records records.json \\
        --rows rows.tsv --uploads 480 --photos 480 --logs logs/ \\
        --switched-at 1767000000.5 --version effl0-20261124

Exit status 1 when anything does not add up.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from .client import Client, multipart, trusting_context
from .smoke import photo_jpeg, sign_up

PREDICTION_URL = re.compile(r"/predictions/(\d+)/$")
# gunicorn's access log (gunicorn.conf.py): client "request line" status ...
SERVED = re.compile(r'"POST /\?upload=(\d+) HTTP/1\.[01]" (\d{3}) ')


def percentile(values: list[float], p: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    k = min(len(data) - 1, max(0, round(p / 100 * len(data) + 0.5) - 1))
    return data[k]


def run(args) -> int:
    context = trusting_context(args.cafile) if args.cafile else None
    photos = [photo_jpeg(1224, 816, seed=i) for i in range(8)]
    first = Client(args.https, ssl_context=context)
    sign_up(first, f"swarm-{uuid.uuid4().hex[:8]}")
    token = first.get("/").csrf_token()
    cookies = dict(first.cookies)
    first.close()
    fields = {"csrfmiddlewaretoken": token}
    bodies = [multipart(fields, {"image": ("note.jpg", p, "image/jpeg")}) for p in photos]

    records: list[dict] = []
    lock = threading.Lock()
    counter = [0]
    started = time.time()
    deadline = time.monotonic() + args.seconds
    # The changes made under load may outlast --seconds on a slow machine:
    # then go on until the caller says they are done, within bounds.
    last_call = time.monotonic() + 3 * args.seconds
    until = Path(args.until_file) if args.until_file else None

    def going_on() -> bool:
        now = time.monotonic()
        if now < deadline:
            return True
        return until is not None and not until.exists() and now < last_call

    def client_loop():
        client = Client(args.https, ssl_context=context, cookies=dict(cookies), retry=False)
        headers = {"Origin": args.https, "Referer": args.https + "/"}
        try:
            while going_on():
                with lock:
                    if counter[0] >= args.max_uploads:
                        return
                    n = counter[0]
                    counter[0] += 1
                body, content_type = bodies[n % len(bodies)]
                record = {"n": n, "start": time.time()}
                try:
                    response = client.request(
                        "POST",
                        f"/?upload={n}",
                        body=body,
                        headers={**headers, "Content-Type": content_type},
                    )
                    match = PREDICTION_URL.search(response.location or "")
                    record["status"] = response.status
                    if response.status == 302 and match:
                        record["prediction"] = int(match.group(1))
                    else:
                        record["error"] = f"HTTP {response.status}: {response.text[:120]!r}"
                except OSError as exc:  # refused, reset, timed out: all failures
                    client.close()
                    record["error"] = f"{type(exc).__name__}: {exc}"
                record["end"] = time.time()
                with lock:
                    records.append(record)
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.time() - started
    Path(args.out).write_text(
        json.dumps({"started": started, "seconds": seconds, "records": records})
    )

    ok = [r for r in records if "prediction" in r]
    failed = sorted((r for r in records if "prediction" not in r), key=lambda r: r["start"])
    latencies = [(r["end"] - r["start"]) * 1000 for r in ok]
    print(
        f"load: {len(ok)} uploads, {len(failed)} failed, {len(ok) / seconds:.1f} uploads/s "
        f"over {seconds:.1f} s from {args.clients} clients; latency p50 "
        f"{percentile(latencies, 50):.0f} ms, p95 {percentile(latencies, 95):.0f} ms, "
        f"max {max(latencies, default=float('nan')):.0f} ms"
    )
    for r in failed:
        print(f"load: FAILED upload {r['n']} at +{r['start'] - started:.1f} s: {r['error']}")
    return 1 if failed or not ok else 0


def served_by(log_dir: Path) -> dict[int, str]:
    """Upload number -> the replica (its log file's name) that answered it."""
    served: dict[int, str] = {}
    for log in sorted(log_dir.glob("*.log")):
        for match in SERVED.finditer(log.read_text(errors="replace")):
            if match.group(2) == "302":
                served[int(match.group(1))] = log.stem
    return served


def check(args) -> int:
    data = json.loads(Path(args.records).read_text())
    records = data["records"]
    ok = [r for r in records if "prediction" in r]
    problems: list[str] = []

    versions: dict[int, str] = {}
    for line in Path(args.rows).read_text().splitlines():
        if line.strip():
            pk, version = line.split("\t")
            versions[int(pk)] = version.strip()
    figures = f"{len(ok)} client successes, {args.uploads} upload rows, {args.photos} photos"
    if not (len(ok) == args.uploads == len(versions) == args.photos):
        problems.append(f"rows and objects do not match the uploads: {figures}")
    missing = [r["n"] for r in ok if r["prediction"] not in versions]
    if missing:
        problems.append(f"{len(missing)} successful uploads have no row, e.g. {missing[:5]}")
    print(f"check: {figures}, {len(versions)} prediction rows")

    # After the switch every replica answers with the new version.
    served = served_by(Path(args.logs))
    running = [
        line.strip()
        for line in (Path(args.logs) / "running.txt").read_text().splitlines()
        if line.strip()
    ]
    after = [r for r in ok if r["start"] > args.switched_at]
    by_replica: dict[str, Counter] = defaultdict(Counter)
    unattributed = 0
    for r in after:
        replica = served.get(r["n"])
        version = versions.get(r["prediction"], "?")
        if replica is None:
            unattributed += 1
        else:
            by_replica[replica][version] += 1
        if version != args.version:
            problems.append(f"upload {r['n']} after the switch answered by {version}")
    for replica in sorted(by_replica):
        counts = ", ".join(f"{n} by {v}" for v, n in by_replica[replica].most_common())
        print(f"check: after the switch, replica {replica}: {counts}")
    if unattributed:
        print(f"check: {unattributed} uploads after the switch not found in a replica's log")
    for replica in running:
        if not by_replica.get(replica):
            problems.append(f"running replica {replica} served no upload after the switch")
    if not after:
        problems.append("no upload started after the switch")

    for problem in problems[:20]:
        print(f"check: FAILED: {problem}")
    if not problems:
        print(
            f"check: passed: every upload kept once (rows = photos = successes), and all "
            f"{len(after)} uploads after the switch, on all {len(running)} running replicas, "
            f"answered by {args.version}"
        )
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("run", help="upload under load; records to --out")
    p.add_argument("--https", required=True)
    p.add_argument("--cafile")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--max-uploads", type=int, default=20000)
    p.add_argument(
        "--until-file", help="after --seconds, go on until this file exists (3 x --seconds at most)"
    )
    p.add_argument("--out", required=True)
    p = commands.add_parser("check", help="check the records against the stack")
    p.add_argument("--records", required=True)
    p.add_argument("--rows", required=True, help="prediction id <tab> model version, a line each")
    p.add_argument("--uploads", type=int, required=True, help="rows in the uploads table")
    p.add_argument("--photos", type=int, required=True, help="photos in the bucket")
    p.add_argument("--logs", required=True, help="one <replica>.log each, and running.txt")
    p.add_argument("--switched-at", type=float, required=True, help="epoch seconds")
    p.add_argument("--version", required=True, help="the version activated")
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else check(args)


if __name__ == "__main__":
    sys.exit(main())
