"""Photos in a bucket, the two ways to send them: `make bench-photos`.

Starts SeaweedFS and the production stack on loopback (Stack: Postgres,
gunicorn with gunicorn.conf.py, nginx with the project's template) with
photos in a bucket, uploads three photos of about 0.06, 0.8 and 9 MB, then
fetches each one through nginx, one request at a time:

- presigned: DJANGO_S3_ACCEL_REDIRECT set, the view answers with an
  X-Accel-Redirect and nginx fetches a presigned URL from the bucket;
- streamed: the setting unset, the view streams the object from the bucket
  through Django.

gunicorn is restarted for each turn of a route; the routes take turns.

Prints, per object and route, the client's p50 latency, the time a worker
was busy per request (gunicorn's own request time, p50), and gunicorn's and
nginx's CPU time per request; then the ratios streamed / presigned.

    python -m classifier.tests.deploy.bench_photos [--requests 40] [--workers 2]

Exit status 1 when a photo came back wrong.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .bench import cpu_seconds, model_dir
from .client import Client, trusting_context
from .seaweedfs import S3Server
from .smoke import sign_up, upload
from .stack import Stack, stop

BUCKET = "bench"
ROUTES = ("presigned", "streamed")
# width, height of a noisy JPEG (about a byte per pixel)
SIZES = {"thumbnail-sized": (280, 210), "photo": (1040, 780), "large photo": (3460, 2600)}
ACCESS_LINE = re.compile(r'"GET (\S+) HTTP/[\d.]+" (\d+) \S+ ([\d.]+)s')


def noisy_jpeg(width: int, height: int) -> bytes:
    """A JPEG that hardly compresses, so its size is set by its pixel count."""
    from PIL import Image

    img = Image.merge("RGB", [Image.effect_noise((width, height), 64) for _ in range(3)])
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    return out.getvalue()


def worker_times_ms(log: Path, offset: int, path: str) -> list[float]:
    """gunicorn's request times (ms) for GETs of path logged after offset."""
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return [
        float(m.group(3)) * 1000
        for m in ACCESS_LINE.finditer(text)
        if m.group(1) == path and m.group(2) == "200"
    ]


@dataclass
class Figures:
    latencies_ms: list[float] = field(default_factory=list)
    worker_ms: list[float] = field(default_factory=list)
    app_cpu_s: float = 0.0
    nginx_cpu_s: float = 0.0

    def per_request(self) -> dict:
        n = len(self.latencies_ms)
        return {
            "p50": statistics.median(self.latencies_ms),
            "worker": statistics.median(self.worker_ms) if self.worker_ms else float("nan"),
            "app_cpu": 1000 * self.app_cpu_s / n,
            "nginx_cpu": 1000 * self.nginx_cpu_s / n,
        }


def warm_up(client: Client, path: str, data: bytes):
    """Both workers, connections, caches; and the photo must come back whole."""
    for _ in range(6):
        response = client.get(path)
        if response.status != 200 or response.body != data:
            raise SystemExit(f"bench: {path} came back wrong (HTTP {response.status})")


def measure(stack: Stack, client: Client, path: str, data: bytes, requests: int, into: Figures):
    log = stack.workdir / "gunicorn.log"
    time.sleep(0.2)
    offset = log.stat().st_size
    cpu_before = cpu_seconds(stack.gunicorn.pid), cpu_seconds(stack.nginx.pid)
    for _ in range(requests):
        t0 = time.perf_counter()
        response = client.get(path)
        into.latencies_ms.append((time.perf_counter() - t0) * 1000)
        if response.status != 200 or len(response.body) != len(data):
            raise SystemExit(f"bench: {path} came back wrong (HTTP {response.status})")
    cpu_after = cpu_seconds(stack.gunicorn.pid), cpu_seconds(stack.nginx.pid)
    time.sleep(0.5)  # the access log line is written after the response
    into.worker_ms += worker_times_ms(log, offset, path)
    into.app_cpu_s += cpu_after[0] - cpu_before[0]
    into.nginx_cpu_s += cpu_after[1] - cpu_before[1]


def restart_app(stack: Stack, accel: bool):
    """gunicorn again, with DJANGO_S3_ACCEL_REDIRECT set or not."""
    stop(stack.gunicorn)
    if accel:
        stack.env["DJANGO_S3_ACCEL_REDIRECT"] = "/protected-s3/"
    else:
        stack.env.pop("DJANGO_S3_ACCEL_REDIRECT", None)
    stack._start_gunicorn(stack.workdir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per object and route")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--rounds", type=int, default=4, help="turns each route takes")
    args = parser.parse_args(argv)

    photos = {name: noisy_jpeg(*size) for name, size in SIZES.items()}
    with tempfile.TemporaryDirectory(prefix="usbills-bench-photos-") as tmp:
        tmp = Path(tmp)
        with S3Server.start(tmp / "s3") as s3:
            s3.client().create_bucket(Bucket=BUCKET)
            env = {
                "DJANGO_S3_BUCKET": BUCKET,
                "DJANGO_S3_ENDPOINT_URL": s3.endpoint_url,
                "DJANGO_S3_ACCESS_KEY_ID": s3.access_key,
                "DJANGO_S3_SECRET_ACCESS_KEY": s3.secret_key,
                "CLASSIFIER_UPLOAD_RATE": "off",
            }
            with Stack.start(
                tmp / "stack", model_dir=model_dir(tmp), workers=args.workers, extra_env=env
            ) as stack:
                context = trusting_context(str(stack.cert_file))
                client = Client(stack.https_url, ssl_context=context)
                sign_up(client, "bench")
                paths = {}
                for name, data in photos.items():
                    response = upload(client, data, name=f"{name}.jpg")
                    if response.status != 302:
                        print(f"bench: the upload of the {name} failed: HTTP {response.status}")
                        return 1
                    paths[name] = response.location.split("://", 1)[-1]
                    paths[name] = "/" + paths[name].split("/", 1)[1] + "photo/"
                figures = {(r, n): Figures() for r in ROUTES for n in photos}
                # The routes take turns, so that a machine busy with other
                # work slows both alike.
                per_round = max(1, args.requests // args.rounds)
                for _ in range(args.rounds):
                    for route in ROUTES:
                        restart_app(stack, accel=route == "presigned")
                        client.close()
                        for name, data in photos.items():
                            warm_up(client, paths[name], data)
                        time.sleep(1)  # the workers' start-up work done
                        for name, data in photos.items():
                            into = figures[route, name]
                            measure(stack, client, paths[name], data, per_round, into)
                client.close()
    report({key: f.per_request() for key, f in figures.items()}, photos, args)
    return 0


def report(results: dict, photos: dict, args) -> None:
    cores = len(os.sched_getaffinity(0))
    print(
        f"bench: {args.workers} gunicorn workers, {cores} cores, SeaweedFS on loopback, "
        f"{args.requests} requests per object and route, one at a time, in {args.rounds} turns"
    )
    print("p50 ms: the client's latency; worker ms: gunicorn's request time (p50);")
    print("app/nginx CPU ms: gunicorn's and nginx's CPU time per request")
    header = ("object", "MB", "route", "p50 ms", "worker ms", "app CPU", "nginx CPU")
    print("{:<16} {:>5} {:<10} {:>7} {:>9} {:>8} {:>9}".format(*header))
    for name, data in photos.items():
        for route in ROUTES:
            r = results[route, name]
            print(
                f"{name:<16} {len(data) / 1e6:>5.2f} {route:<10} {r['p50']:>7.1f} "
                f"{r['worker']:>9.1f} {r['app_cpu']:>8.1f} {r['nginx_cpu']:>9.1f}"
            )
    print("streamed / presigned:")
    for name in photos:
        s, p = results["streamed", name], results["presigned", name]
        app_cpu = s["app_cpu"] / max(p["app_cpu"], 0.01)
        print(
            f"  {name:<16} latency x{s['p50'] / p['p50']:.2f}, worker time "
            f"x{s['worker'] / p['worker']:.1f}, app CPU x{app_cpu:.1f}"
        )
    print(f"bench: load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
