"""The S3 backends for photos and their smaller copies, and for model files
(settings pick them by DJANGO_S3_BUCKET).

django-storages' S3Storage, with two differences that keep the app's promises:

- A bucket that cannot be reached or refuses a request raises OSError, as a
  full or unwritable disk does: the upload views already answer that with a
  clear 503 and keep neither a row nor a file.
- Short timeouts and few retries: a request waits seconds, not minutes, for
  a service that is down (gunicorn would kill the worker first).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

FAILURES = (BotoCoreError, ClientError, Boto3Error)
LIMITS = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})


class PhotoStorage(S3Storage):
    """S3Storage whose failures are OSErrors."""

    def __init__(self, **settings):
        super().__init__(**settings)
        self.client_config = self.client_config.merge(LIMITS)

    def save(self, name, content, max_length=None):
        try:
            return super().save(name, content, max_length)
        except FAILURES as exc:
            raise OSError(f"could not store {name} in bucket {self.bucket_name}: {exc}") from exc

    def _open(self, name, mode="rb"):
        try:
            return super()._open(name, mode)
        except FAILURES as exc:
            raise OSError(f"could not read {name} from bucket {self.bucket_name}: {exc}") from exc

    def delete(self, name):
        try:
            super().delete(name)
        except FAILURES as exc:
            raise OSError(f"could not delete {name} from bucket {self.bucket_name}: {exc}") from exc

    def exists(self, name):
        try:
            return super().exists(name)
        except FAILURES as exc:
            raise OSError(f"could not look up {name} in bucket {self.bucket_name}: {exc}") from exc


class ModelStorage(PhotoStorage):
    """Model files in the same bucket: each under a name of its own, with its SHA-256.

    The checksum travels as object metadata, so that publishing a version
    again costs one HEAD per file, not a download. Readers never trust it:
    they hash the bytes they receive (classifier/services.py). Every call
    goes through the client of the calling thread (django-storages keeps one
    per thread; its bucket object is shared).
    """

    CONTENT_TYPES = {".json": "application/json", ".tflite": "application/octet-stream"}

    def _key(self, name: str) -> str:
        return self._normalize_name(clean_name(name))

    def sha256(self, name: str) -> str | None:
        """The SHA-256 the object was written with; None when there is no object."""
        client = self.connection.meta.client
        try:
            head = client.head_object(Bucket=self.bucket_name, Key=self._key(name))
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                return None
            raise OSError(f"could not look up {name} in bucket {self.bucket_name}: {exc}") from exc
        except FAILURES as exc:
            raise OSError(f"could not look up {name} in bucket {self.bucket_name}: {exc}") from exc
        return head.get("Metadata", {}).get("sha256")

    def put(self, name: str, path: Path, *, sha256: str) -> None:
        """Write the file under exactly this name, replacing any object there."""
        extra = {
            "Metadata": {"sha256": sha256},
            "ContentType": self.CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream"),
        }
        try:
            self.connection.meta.client.upload_file(
                str(path),
                self.bucket_name,
                self._key(name),
                ExtraArgs=extra,
                Config=self.transfer_config,
            )
        except FAILURES as exc:
            raise OSError(f"could not store {name} in bucket {self.bucket_name}: {exc}") from exc

    def chunks(self, name: str, size: int = 1 << 20) -> Iterator[bytes]:
        """The object's bytes as they arrive; FileNotFoundError when there is no object."""
        client = self.connection.meta.client
        try:
            body = client.get_object(Bucket=self.bucket_name, Key=self._key(name))["Body"]
            yield from body.iter_chunks(size)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"no {name} in bucket {self.bucket_name}") from exc
            raise OSError(f"could not read {name} from bucket {self.bucket_name}: {exc}") from exc
        except FAILURES as exc:
            raise OSError(f"could not read {name} from bucket {self.bucket_name}: {exc}") from exc
