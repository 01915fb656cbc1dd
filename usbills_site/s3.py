"""The S3 backend for photos and their smaller copies (settings pick it by DJANGO_S3_BUCKET).

django-storages' S3Storage, with two differences that keep the app's promises:

- A bucket that cannot be reached or refuses a request raises OSError, as a
  full or unwritable disk does: the upload views already answer that with a
  clear 503 and keep neither a row nor a file.
- Short timeouts and few retries: a request waits seconds, not minutes, for
  a service that is down (gunicorn would kill the worker first).
"""

from __future__ import annotations

from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from storages.backends.s3 import S3Storage

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
