"""Where photos and their smaller copies are kept: local disk, or an S3-compatible service.

Local disk (MEDIA_ROOT) unless DJANGO_S3_BUCKET names a bucket; then
django-storages' S3 backend (boto3, usbills_site/s3.py) against AWS or, with
DJANGO_S3_ENDPOINT_URL, any S3-compatible service (SeaweedFS, MinIO, ...).
The app only ever goes through Django's default storage (save, open, delete),
so nothing else changes with the switch.

With a bucket, model versions are published to it as well, under models/
(STORAGES["models"]; classifier/services.py), so that web processes on any
machine can fetch the version they must serve. Without one there is no
"models" storage and model files stay on local disk.

    DJANGO_S3_BUCKET             the bucket; empty means local disk
    DJANGO_S3_ENDPOINT_URL       e.g. http://seaweedfs:8333; empty means AWS
    DJANGO_S3_ACCESS_KEY_ID      with the secret below; both empty means
    DJANGO_S3_SECRET_ACCESS_KEY  boto3's own lookup (AWS_* variables, a role)
    DJANGO_S3_REGION             default us-east-1
    DJANGO_S3_PREFIX             a folder in the bucket for everything, e.g. usbills/
    DJANGO_S3_ADDRESSING_STYLE   path (default with an endpoint) or virtual
"""

from __future__ import annotations

from collections.abc import Mapping

FILESYSTEM = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
S3 = "usbills_site.s3.PhotoStorage"
MODELS_S3 = "usbills_site.s3.ModelStorage"


def s3_options(environ: Mapping[str, str]) -> dict | None:
    """The S3 backend's options from the environment, or None for local disk."""
    bucket = environ.get("DJANGO_S3_BUCKET", "").strip()
    if not bucket:
        return None
    endpoint = environ.get("DJANGO_S3_ENDPOINT_URL", "").strip() or None
    return {
        "bucket_name": bucket,
        "endpoint_url": endpoint,
        "access_key": environ.get("DJANGO_S3_ACCESS_KEY_ID", "").strip() or None,
        "secret_key": environ.get("DJANGO_S3_SECRET_ACCESS_KEY", "").strip() or None,
        "region_name": environ.get("DJANGO_S3_REGION", "").strip() or "us-east-1",
        "location": environ.get("DJANGO_S3_PREFIX", "").strip().strip("/"),
        # Services other than AWS rarely have a DNS name for every bucket.
        "addressing_style": environ.get("DJANGO_S3_ADDRESSING_STYLE", "").strip()
        or ("path" if endpoint else None),
        "signature_version": "s3v4",
        # Photos are private: no ACL that could make an object public; the
        # bucket's own (private) policy applies.
        "default_acl": None,
        # A URL to an object, should one ever be made, is signed and short-lived.
        "querystring_auth": True,
        "querystring_expire": 60,
        # As on disk: saving never replaces an existing object.
        "file_overwrite": False,
    }


def default_storage(environ: Mapping[str, str]) -> dict:
    """The STORAGES["default"] entry for this environment."""
    options = s3_options(environ)
    if options is None:
        return FILESYSTEM
    return {"BACKEND": S3, "OPTIONS": options}


def model_storage(environ: Mapping[str, str]) -> dict | None:
    """The STORAGES["models"] entry: the photos' bucket, or None without one."""
    options = s3_options(environ)
    if options is None:
        return None
    return {"BACKEND": MODELS_S3, "OPTIONS": options}
