"""Photos, display copies and thumbnails in an S3 bucket: a real S3-compatible server
(SeaweedFS, `weed server -s3` on loopback) behind Django's default storage,
as DJANGO_S3_BUCKET switches it on (usbills_site/storage.py)."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError

from classifier.models import Prediction, Upload
from classifier.tests.deploy.stack import free_port
from conftest import BUCKET, image_bytes, media_files, settings_in_a_new_process, uploaded
from usbills_site import storage


@pytest.fixture
def s3_folder(s3_bucket, s3_server, settings):
    """Django's default storage in the bucket, under a folder of this test's own
    (DJANGO_S3_PREFIX): the folder's name."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    options = s3_server.storage_options(s3_bucket, location=prefix)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": storage.S3, "OPTIONS": options},
    }
    return prefix


def keys(s3_server, prefix) -> list[str]:
    """The names of the objects in the test's folder, as the storage names them."""
    listing = s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")
    return sorted(item["Key"].removeprefix(prefix + "/") for item in listing.get("Contents", []))


# Settings ---------------------------------------------------------------------


def test_local_disk_unless_a_bucket_is_named():
    assert storage.default_storage({}) == storage.FILESYSTEM
    assert storage.default_storage({"DJANGO_S3_BUCKET": " "}) == storage.FILESYSTEM
    config = storage.default_storage(
        {"DJANGO_S3_BUCKET": "photos", "DJANGO_S3_ENDPOINT_URL": "http://s3.internal:8333"}
    )
    assert config["BACKEND"] == storage.S3
    options = config["OPTIONS"]
    assert options["bucket_name"] == "photos"
    assert options["endpoint_url"] == "http://s3.internal:8333"
    assert options["addressing_style"] == "path"
    # Private objects, signed short-lived URLs, nothing overwritten.
    assert options["default_acl"] is None
    assert options["querystring_auth"] is True
    assert options["querystring_expire"] <= 300
    assert options["file_overwrite"] is False
    # Against AWS itself: its own addressing, boto3's own credentials lookup.
    aws = storage.s3_options({"DJANGO_S3_BUCKET": "photos", "DJANGO_S3_PREFIX": "/usbills/"})
    assert aws["endpoint_url"] is None
    assert aws["addressing_style"] is None
    assert aws["access_key"] is aws["secret_key"] is None
    assert aws["location"] == "usbills"


def test_settings_switch_to_the_bucket_and_stream_photos_through_django():
    # The real settings module, read in a process of its own from these variables.
    code = (
        "from django.conf import settings;"
        "print(settings.STORAGES['default']['BACKEND']);"
        "print(settings.STORAGES['default']['OPTIONS']['bucket_name']);"
        "print(repr(settings.MEDIA_ACCEL_REDIRECT))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_DEBUG": "1",
        "DJANGO_S3_BUCKET": "photos",
        "DJANGO_S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "DJANGO_MEDIA_ACCEL_REDIRECT": "/protected-media/",
    }
    out = settings_in_a_new_process(env, code)
    # nginx cannot read objects from its disk: no X-Accel-Redirect with a bucket.
    assert out.split("\n")[:3] == ["usbills_site.s3.PhotoStorage", "photos", "''"]


@pytest.mark.parametrize(("bucket", "expected"), [("photos", "/protected-s3/"), ("", "")])
def test_the_presigned_route_needs_a_bucket(bucket, expected):
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_DEBUG": "1",
        "DJANGO_S3_BUCKET": bucket,
        "DJANGO_S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "DJANGO_S3_ACCEL_REDIRECT": "/protected-s3/",
    }
    code = "from django.conf import settings; print(settings.S3_ACCEL_REDIRECT)"
    assert settings_in_a_new_process(env, code).strip() == expected


# The storage ----------------------------------------------------------------------


def test_save_open_delete_are_objects_in_the_bucket(s3_server, s3_folder):
    data = image_bytes(120, 80)
    name = default_storage.save("photos/abc.jpg", ContentFile(data))
    assert name == "photos/abc.jpg"
    assert keys(s3_server, s3_folder) == ["photos/abc.jpg"]
    with default_storage.open(name, "rb") as f:
        assert f.read() == data
    assert default_storage.size(name) == len(data)
    # As on disk, saving under a taken name keeps both.
    second = default_storage.save("photos/abc.jpg", ContentFile(b"other"))
    assert second != name
    assert len(keys(s3_server, s3_folder)) == 2

    default_storage.delete(name)
    default_storage.delete(second)
    assert keys(s3_server, s3_folder) == []
    assert not default_storage.exists(name)
    with pytest.raises(FileNotFoundError):
        default_storage.open(name, "rb")


def test_objects_are_private(s3_server, s3_folder):
    name = default_storage.save("photos/private.jpg", ContentFile(image_bytes()))
    plain = f"{s3_server.endpoint_url}/{BUCKET}/{s3_folder}/{name}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(plain, timeout=5)  # noqa: S310 - loopback
    assert refused.value.code == 403
    wrong = s3_server.client(secret_key="not-the-secret")
    with pytest.raises(Exception, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
        wrong.get_object(Bucket=BUCKET, Key=f"{s3_folder}/{name}")
    # A URL, should the storage ever be asked for one, is signed and expires.
    signed = default_storage.url(name)
    assert "X-Amz-Signature=" in signed
    assert "X-Amz-Expires=60" in signed
    with urllib.request.urlopen(signed, timeout=5) as response:  # noqa: S310 - loopback
        assert response.status == 200


def test_an_unreachable_bucket_is_an_oserror(settings):
    port = free_port()  # nothing listens there
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": storage.S3,
            "OPTIONS": storage.s3_options(
                {
                    "DJANGO_S3_BUCKET": "photos",
                    "DJANGO_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                    "DJANGO_S3_ACCESS_KEY_ID": "key",
                    "DJANGO_S3_SECRET_ACCESS_KEY": "secret",
                }
            ),
        },
    }
    with pytest.raises(OSError, match="could not (look up|store) photos/x.jpg in bucket photos"):
        default_storage.save("photos/x.jpg", ContentFile(b"x"))
    with pytest.raises(OSError, match="could not read"):
        default_storage.open("photos/x.jpg", "rb")


# The app on the bucket ----------------------------------------------------------------


@pytest.mark.django_db
def test_upload_and_photo_views_on_the_bucket(
    s3_server, s3_folder, media_root, client, user, other_user
):
    data = image_bytes(200, 120)
    client.force_login(user)
    response = client.post("/", {"image": uploaded(data)})
    assert response.status_code == 302
    upload = Upload.objects.get()
    # The photo, its display copy and its thumbnail are objects; nothing was
    # written to disk.
    names = [upload.file.name, upload.display.name, upload.thumbnail.name]
    assert keys(s3_server, s3_folder) == sorted(names)
    assert upload.file.name.startswith("photos/")
    assert upload.display.name.startswith("display/")
    assert upload.thumbnail.name.startswith("thumbnails/")
    assert media_files(media_root) == []

    prediction = Prediction.objects.get()
    photo = client.get(f"/predictions/{prediction.pk}/photo/")
    assert photo.status_code == 200
    assert b"".join(photo.streaming_content) == data
    assert photo["Content-Type"] == "image/jpeg"
    assert photo["Content-Length"] == str(len(data))
    assert "X-Accel-Redirect" not in photo
    for copy in ("display", "thumbnail"):
        smaller = client.get(f"/predictions/{prediction.pk}/{copy}/")
        assert smaller.status_code == 200
        assert b"".join(smaller.streaming_content)[:2] == b"\xff\xd8"  # a JPEG

    # Someone else gets nothing, the same as for a photo that does not exist.
    client.force_login(other_user)
    assert client.get(f"/predictions/{prediction.pk}/photo/").status_code == 404
    assert client.get(f"/predictions/{prediction.pk}/display/").status_code == 404
    assert client.get(f"/predictions/{prediction.pk}/thumbnail/").status_code == 404


@pytest.mark.django_db
def test_photo_views_hand_nginx_a_presigned_url_after_the_owner_check(
    s3_server, s3_folder, client, user, other_user, make_user, settings
):
    from django.contrib.auth.models import Permission

    settings.S3_ACCEL_REDIRECT = "/protected-s3/"
    data = image_bytes(200, 120)
    client.force_login(user)
    client.post("/", {"image": uploaded(data)})
    prediction = Prediction.objects.get()
    upload = prediction.upload

    for copy, name in (
        ("photo", upload.file.name),
        ("display", upload.display.name),
        ("thumbnail", upload.thumbnail.name),
    ):
        response = client.get(f"/predictions/{prediction.pk}/{copy}/")
        assert response.status_code == 200
        assert response.content == b""  # nginx sends the bytes
        assert response["Content-Type"] == "image/jpeg"
        assert response["Cache-Control"] == "private, max-age=3600"
        accel = response["X-Accel-Redirect"]
        # Path and query only: the host is nginx's to pin.
        path = f"/protected-s3/{BUCKET}/{s3_folder}/{name}?"
        assert accel.startswith(path), accel
        assert "X-Amz-Signature=" in accel
        assert "X-Amz-Expires=60&" in accel
        # Signed for exactly this object: the bucket gives its bytes to anyone
        # who has the URL (for 60 s), as nginx will.
        url = s3_server.endpoint_url + accel.removeprefix("/protected-s3")
        with urllib.request.urlopen(url, timeout=10) as fetched:  # noqa: S310 - loopback
            body = fetched.read()
        assert body == data if copy == "photo" else body[:2] == b"\xff\xd8"

    # Someone else, or staff without the permission: "not found", no URL made.
    staff = make_user("helper", is_staff=True)
    for outsider in (other_user, staff):
        client.force_login(outsider)
        for copy in ("photo", "display", "thumbnail"):
            response = client.get(f"/predictions/{prediction.pk}/{copy}/")
            assert response.status_code == 404
            assert "X-Accel-Redirect" not in response
    # With the permission to view predictions, staff get the same answer as the owner.
    staff.user_permissions.add(Permission.objects.get(codename="view_prediction"))
    client.force_login(type(staff).objects.get(pk=staff.pk))
    response = client.get(f"/predictions/{prediction.pk}/photo/")
    assert response.status_code == 200
    assert response["X-Accel-Redirect"].startswith(f"/protected-s3/{BUCKET}/{s3_folder}/photos/")


@pytest.mark.django_db
def test_a_failed_upload_leaves_no_object(s3_server, s3_folder, user_client, monkeypatch):
    # The rows cannot be saved after the three objects were written: they are deleted.
    def refuse(*args, **kwargs):
        raise DatabaseError("the database said no")

    monkeypatch.setattr(Prediction.objects, "create", refuse)
    user_client.raise_request_exception = False
    response = user_client.post("/", {"image": uploaded(image_bytes())})
    assert response.status_code == 503  # how the site answers a database failure
    assert Upload.objects.count() == 0
    assert keys(s3_server, s3_folder) == []


@pytest.mark.django_db
def test_an_unreachable_bucket_is_a_clear_503(settings, user_client):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": storage.S3,
            "OPTIONS": storage.s3_options(
                {
                    "DJANGO_S3_BUCKET": "photos",
                    "DJANGO_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
                    "DJANGO_S3_ACCESS_KEY_ID": "key",
                    "DJANGO_S3_SECRET_ACCESS_KEY": "secret",
                }
            ),
        },
    }
    response = user_client.post("/", {"image": uploaded(image_bytes())})
    assert response.status_code == 503
    assert "Your photo could not be stored right now" in response.content.decode()
    assert Upload.objects.count() == Prediction.objects.count() == 0


@pytest.mark.django_db
def test_deleting_a_photo_or_an_account_removes_the_objects(
    s3_server, s3_folder, client, make_user, django_capture_on_commit_callbacks
):
    from classifier import services

    owner = make_user()
    client.force_login(owner)
    for n in range(3):
        client.post("/", {"image": uploaded(image_bytes(80 + n, 60))})
    uploads = list(Upload.objects.filter(owner=owner))
    assert len(keys(s3_server, s3_folder)) == 9  # photo, display copy, thumbnail

    with django_capture_on_commit_callbacks(execute=True):
        services.upload_delete(upload=uploads[0], user=owner)
    left = keys(s3_server, s3_folder)
    assert len(left) == 6
    assert uploads[0].file.name not in left
    assert uploads[0].display.name not in left
    assert uploads[0].thumbnail.name not in left

    with django_capture_on_commit_callbacks(execute=True):
        services.user_delete(user=owner)
    assert keys(s3_server, s3_folder) == []
