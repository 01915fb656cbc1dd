"""Upload throughput and latency through nginx: `make bench-http`.

Starts the production stack on loopback (Stack: a fresh Postgres database,
gunicorn with gunicorn.conf.py, nginx with the project's template), signs one
user up, then uploads one-megapixel JPEGs at 1, 4 and 16 concurrent clients,
each level bounded in time and count. Prints throughput, p50/p99 latency and
failures per level, then checks that the database rows and the stored files
match the successful uploads exactly.

    python -m classifier.tests.deploy.bench [--clients 1,4,16] [--seconds 12]

Exit status 1 when an upload failed or rows/files do not match; the speed
target (>= 60 uploads/s at 16 clients, p99 <= 400 ms) is reported, and only
enforced with --strict.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .client import Client, multipart, trusting_context
from .smoke import photo_jpeg, sign_up
from .stack import REPO, Stack

TARGET_RATE = 60.0  # uploads/s at 16 clients
TARGET_P99_MS = 400.0
PREDICTION_URL = re.compile(r"/predictions/\d+/$")


@dataclass
class Level:
    clients: int
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] | None = None
    errors: list[str] | None = None

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        data = sorted(self.latencies_ms or [])
        if not data:
            return float("nan")
        k = min(len(data) - 1, max(0, round(p / 100 * len(data) + 0.5) - 1))
        return data[k]


def run_level(
    stack: Stack,
    cookies: dict[str, str],
    token: str,
    bodies: list[tuple[bytes, str]],
    *,
    clients: int,
    seconds: float,
    max_uploads: int,
) -> Level:
    """`clients` threads upload in a loop until the time or the count runs out."""
    context = trusting_context(str(stack.cert_file))
    level = Level(clients, latencies_ms=[], errors=[])
    lock = threading.Lock()
    started = [0]
    deadline = time.monotonic() + seconds

    def worker(index: int):
        client = Client(stack.https_url, ssl_context=context, cookies=dict(cookies))
        headers_base = {"Origin": stack.https_url, "Referer": stack.https_url + "/"}
        n = index
        try:
            while time.monotonic() < deadline:
                with lock:
                    if started[0] >= max_uploads:
                        return
                    started[0] += 1
                body, content_type = bodies[n % len(bodies)]
                n += clients
                t0 = time.perf_counter()
                try:
                    headers = {**headers_base, "Content-Type": content_type}
                    response = client.request("POST", "/", body=body, headers=headers)
                    ok = response.status == 302 and PREDICTION_URL.search(response.location or "")
                    error = "" if ok else f"HTTP {response.status}"
                except OSError as exc:
                    ok, error = False, f"{type(exc).__name__}: {exc}"
                elapsed_ms = (time.perf_counter() - t0) * 1000
                with lock:
                    if ok:
                        level.ok += 1
                        level.latencies_ms.append(elapsed_ms)
                    else:
                        level.failed += 1
                        if len(level.errors) < 5:
                            level.errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    level.seconds = time.monotonic() - t_start
    return level


def cpu_seconds(root_pid: int | None = None, name: str | None = None) -> float:
    """CPU time (user + system) of a process and its children, or of every
    process whose command line contains `name`; Linux only (0 elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if name is not None:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if name.encode() not in f.read():
                        continue
            elif int(entry) != root_pid and int(fields[1]) != root_pid:
                continue
        except (OSError, IndexError, ValueError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def count_rows(stack: Stack) -> tuple[int, int]:
    uploads = stack.query("SELECT count(*) FROM classifier_upload")[0][0]
    predictions = stack.query("SELECT count(*) FROM classifier_prediction")[0][0]
    return uploads, predictions


def model_dir(tmp: Path) -> Path:
    shipped = REPO / "models"
    if (shipped / "CURRENT").is_file():
        return shipped
    print("bench: models/CURRENT is missing: using a tiny untrained model (not representative)")
    return REPO / "classifier" / "tests" / "fixtures" / "tiny-model"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,16", help="concurrency levels")
    parser.add_argument("--seconds", type=float, default=12.0, help="time per level")
    parser.add_argument("--max-uploads", type=int, default=1500, help="uploads per level at most")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: one per core)")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads per worker")
    parser.add_argument("--strict", action="store_true", help="fail when below the target")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]

    photos = [photo_jpeg(1224, 816, seed=i) for i in range(8)]
    with tempfile.TemporaryDirectory(prefix="usbills-bench-") as tmp:
        tmp = Path(tmp)
        with Stack.start(
            tmp,
            model_dir=model_dir(tmp),
            workers=args.workers,
            classifier_threads=args.threads,
            # One user uploads far more than a person could: no per-user limit.
            extra_env={"CLASSIFIER_UPLOAD_RATE": "off"},
        ) as stack:
            workers = stack.env.get("WEB_CONCURRENCY") or str(len(os.sched_getaffinity(0)))
            print(
                f"bench: {workers} gunicorn workers, {args.threads} LiteRT thread(s) each, "
                f"{len(os.sched_getaffinity(0))} cores; photo 1224x816 JPEG, "
                f"{statistics.mean(len(p) for p in photos) / 1024:.0f} KB on average"
            )
            client = Client(stack.https_url, ssl_context=trusting_context(str(stack.cert_file)))
            sign_up(client, "bench")
            token = client.get("/").csrf_token()
            fields = {"csrfmiddlewaretoken": token}
            bodies = [multipart(fields, {"image": ("bench.jpg", p, "image/jpeg")}) for p in photos]
            # Warm-up: the first request of each worker pays for imports and caches.
            warmup = 4
            for body, content_type in bodies[:warmup]:
                headers = {"Content-Type": content_type, "Origin": stack.https_url}
                response = client.request("POST", "/", body=body, headers=headers)
                if response.status != 302:
                    print(f"bench: warm-up upload failed: HTTP {response.status}")
                    return 1
            client.close()

            results = []
            # Postgres backends name their database in their command line.
            db_backend = " " + stack.database_url.rsplit("/", 1)[1] + " "
            cpu_before = {
                "gunicorn": cpu_seconds(stack.gunicorn.pid),
                "nginx": cpu_seconds(stack.nginx.pid),
                "postgres": cpu_seconds(name=db_backend),
                "client": sum(os.times()[:2]),
            }
            header = ("clients", "uploads", "failed", "per s", "p50 ms", "p99 ms")
            print("{:>7} {:>8} {:>6} {:>7} {:>7} {:>7}".format(*header))
            for clients in levels:
                level = run_level(
                    stack,
                    client.cookies,
                    token,
                    bodies,
                    clients=clients,
                    seconds=args.seconds,
                    max_uploads=args.max_uploads,
                )
                results.append(level)
                print(
                    f"{clients:>7} {level.ok:>8} {level.failed:>6} {level.rate:>7.1f} "
                    f"{level.percentile(50):>7.0f} {level.percentile(99):>7.0f}"
                )
                for error in level.errors:
                    print(f"        e.g. {error}")

            measured = sum(r.ok + r.failed for r in results) or 1
            cpu_after = {
                "gunicorn": cpu_seconds(stack.gunicorn.pid),
                "nginx": cpu_seconds(stack.nginx.pid),
                "postgres": cpu_seconds(name=db_backend),
                "client": sum(os.times()[:2]),
            }
            per_upload = ", ".join(
                f"{k} {1000 * (cpu_after[k] - cpu_before[k]) / measured:.1f}" for k in cpu_before
            )
            print(f"bench: CPU ms per upload: {per_upload}")
            # What the same work would reach with every core to itself (the
            # machine may be busy with other things while the bench runs).
            stack_ms = sum(cpu_after[k] - cpu_before[k] for k in cpu_before) * 1000 / measured
            cores = len(os.sched_getaffinity(0))
            print(
                f"bench: at {stack_ms:.1f} CPU ms per upload, {cores} idle cores would allow "
                f"about {cores * 1000 / stack_ms:.0f} uploads/s"
            )
            print(f"bench: load average during the run: {os.getloadavg()[0]:.1f}")
            ok = sum(r.ok for r in results) + warmup
            failed = sum(r.failed for r in results)
            uploads, predictions = count_rows(stack)
            names = stack.media_names()
            photos_stored = sum(n.startswith("photos/") for n in names)
            thumbs_stored = sum(n.startswith("thumbnails/") for n in names)
            displays_stored = sum(n.startswith("display/") for n in names)
            consistent = (
                ok == uploads == predictions == photos_stored == thumbs_stored == displays_stored
            )
            print(
                f"bench: {ok} successful uploads (with {warmup} warm-up); rows: {uploads} uploads, "
                f"{predictions} predictions; files: {photos_stored} photos, "
                f"{displays_stored} display copies, "
                f"{thumbs_stored} thumbnails -> {'consistent' if consistent else 'MISMATCH'}"
            )

    status = 0
    if failed or not consistent:
        status = 1
    top = next((r for r in results if r.clients == 16), None)
    if top is not None:
        met = top.rate >= TARGET_RATE and top.percentile(99) <= TARGET_P99_MS and not top.failed
        print(
            f"bench: target at 16 clients (>= {TARGET_RATE:.0f}/s, p99 <= {TARGET_P99_MS:.0f} ms, "
            f"no failures): {'met' if met else 'NOT met'}"
        )
        if args.strict and not met:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
