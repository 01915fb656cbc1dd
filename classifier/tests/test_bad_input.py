"""Bad input through the upload form and the JSON API: every case ends in a clear message or
correct handling, never a 500, and a refused upload leaves no row and no file.

Real files made with Pillow (or by hand where Pillow cannot make them), the
real upload service, the real database and the tiny model; the EXIF case
uses the shipped model on a real photo of a note. The 30 MB file through
nginx (a 413) is in test_load.py, which runs the real stack.
"""

import functools
import io
import json
import os
import struct
import subprocess
import sys
import time

import pytest
from PIL import Image

from classifier import services
from classifier.models import Prediction, Upload
from classifier.tests.hostile_images import encoded, png_by_hand, scan_bomb
from conftest import REPO, image_bytes, media_files, uploaded

pytestmark = pytest.mark.django_db

NOT_AN_IMAGE = "This file is not an image we can read"
DAMAGED = "incomplete or damaged"


def png_16bit() -> bytes:
    img = Image.new("I;16", (48, 32))
    img.putdata([(x * 1300) % 65536 for x in range(48 * 32)])
    out = io.BytesIO()
    img.save(out, "PNG")
    assert Image.open(io.BytesIO(out.getvalue())).mode.startswith("I")
    return out.getvalue()


def cmyk_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("CMYK", (64, 40), (0, 120, 200, 10)).save(out, "JPEG")
    return out.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 30), (i * 50, 200 - i * 40, 90)) for i in range(5)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(out.getvalue())).n_frames == 5
    return out.getvalue()


def decompression_bomb() -> bytes:
    """A PNG of under 100 KB that would decode to 108 megapixels."""
    out = io.BytesIO()
    Image.new("1", (12_000, 9_000)).save(out, "PNG", optimize=True)
    assert len(out.getvalue()) < 100_000
    return out.getvalue()


def heic() -> bytes:
    """The start of an iPhone HEIC file: an ISO 'ftyp' box with the heic brand."""
    ftyp = b"ftypheic" + b"\0\0\0\0" + b"mif1heic"
    return struct.pack(">I", len(ftyp) + 4) + ftyp + b"\0" * 200


@functools.cache
def small_scan_bomb() -> bytes:
    """2,000 empty scans over 4 megapixels: about 10 s of decoding, 0.3 MB."""
    return scan_bomb(Image.new("L", (2000, 2000), 128), 2000)


@functools.cache
def progressive_too_big_to_hold() -> bytes:
    """6000x6000 colour, progressive, no chroma subsampling: 412 MB of coefficients."""
    return scan_bomb(Image.new("RGB", (6000, 6000), (9, 99, 199)), 11, subsampling=0)


# name, bytes, file name, content type sent, what the user is told
REFUSED = [
    ("empty file", lambda: b"", "note.jpg", "image/jpeg", "The file is empty."),
    ("one byte", lambda: b"\xff", "note.jpg", "image/jpeg", NOT_AN_IMAGE),
    (
        "text named .jpg",
        lambda: b"just some text, not a photo\n" * 20,
        "note.jpg",
        "image/jpeg",
        NOT_AN_IMAGE,
    ),
    (
        "HTML behind a PNG header",
        lambda: b"\x89PNG\r\n\x1a\n<html><script>alert(document.cookie)</script></html>",
        "note.png",
        "image/png",
        NOT_AN_IMAGE,
    ),
    (
        "SVG",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>',
        "note.svg",
        "image/svg+xml",
        NOT_AN_IMAGE,
    ),
    (
        "PDF",
        lambda: b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n",
        "note.pdf",
        "application/pdf",
        NOT_AN_IMAGE,
    ),
    (
        "truncated JPEG",
        lambda: image_bytes(640, 480)[: len(image_bytes(640, 480)) // 2],
        "note.jpg",
        "image/jpeg",
        DAMAGED,
    ),
    (
        "decompression bomb",
        decompression_bomb,
        "note.png",
        "image/png",
        "This image has too many pixels",
    ),
    ("HEIC", heic, "IMG_0001.HEIC", "image/heic", "HEIC/HEIF photos are not supported"),
    ("JPEG scan bomb", small_scan_bomb, "note.jpg", "image/jpeg", "more than 64 scans"),
    (
        "progressive JPEG too big to hold",
        progressive_too_big_to_hold,
        "note.jpg",
        "image/jpeg",
        "too large to decode",
    ),
    (
        "60,000,000x1 PNG",
        lambda: png_by_hand(60_000_000, 1),
        "note.png",
        "image/png",
        "too long and thin",
    ),
    (
        "lossless WebP of 9 megapixels",
        lambda: encoded(Image.new("RGB", (3000, 3000), (1, 2, 3)), "WEBP", lossless=True),
        "note.webp",
        "image/webp",
        "the limit is 8 megapixels for a WEBP",
    ),
]


@pytest.mark.parametrize(
    ("data", "name", "content_type", "message"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_refused_with_a_clear_message_and_nothing_left(
    user_client, media_root, data, name, content_type, message
):
    response = user_client.post("/", {"image": uploaded(data(), name, content_type)})
    assert response.status_code == 200  # the form again, with the reason
    body = response.content.decode()
    assert message in body
    assert 'role="alert"' in body
    assert Upload.objects.count() == 0
    assert Prediction.objects.count() == 0
    assert media_files(media_root) == []


def test_a_30_mb_file_is_refused_by_django_itself(user_client, media_root, settings):
    # Refused from the Content-Length, before the body is read.
    data = b"\xff\xd8\xff\xe0" + b"\0" * (30 * 1024 * 1024)
    response = user_client.post("/", {"image": uploaded(data)})
    assert response.status_code == 413
    assert "This file is too large: the limit is 10 MB." in response.content.decode()
    assert Upload.objects.count() == 0
    assert media_files(media_root) == []


def test_a_file_just_over_the_cap_gets_the_forms_message(user_client, media_root, settings):
    # Within the body cap (the form around the photo needs room), so it is
    # read; the upload handler keeps only the cap plus one byte of it.
    data = b"\xff\xd8\xff\xe0" + b"\0" * (10 * 1024 * 1024 + 100_000)
    response = user_client.post("/", {"image": uploaded(data)})
    assert response.status_code == 200
    assert "This file is too large: the limit is 10 MB." in response.content.decode()
    assert Upload.objects.count() == 0
    assert media_files(media_root) == []


def test_the_scan_bomb_of_the_report_is_answered_within_3_seconds(user_client, media_root):
    """7745x7745 greyscale, its smallest AC scan repeated 16,000 times: minutes of decoding."""
    bomb = scan_bomb(Image.new("L", (7745, 7745), 128), 16_000)
    assert len(bomb) < 2 * 1024 * 1024  # under nginx's body cap
    start = time.perf_counter()
    response = user_client.post("/", {"image": uploaded(bomb)})
    took = time.perf_counter() - start
    assert response.status_code == 200
    assert "more than 64 scans" in response.content.decode()
    assert took < 3, f"{took:.1f} s"
    assert media_files(media_root) == []


def test_thumbnails_keep_none_of_the_originals_metadata(user_client, media_root):
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # a GPS position
    photo = encoded(
        Image.new("RGB", (900, 600), (30, 90, 60)),
        "JPEG",
        exif=exif.tobytes(),
        comment=b"secret comment",
        icc_profile=b"\0" * 128,
    )
    assert user_client.post("/", {"image": uploaded(photo)}).status_code == 302
    thumb = Upload.objects.get().thumbnail.read()
    assert b"secret comment" not in thumb
    assert b"PhoneMaker" not in thumb
    with Image.open(io.BytesIO(thumb)) as img:
        assert not img.getexif()
        assert "comment" not in img.info
        assert "icc_profile" not in img.info


def test_twenty_files_in_one_request_are_refused(user_client, media_root):
    files = [uploaded(image_bytes(), f"note{i}.jpg") for i in range(20)]
    response = user_client.post("/", {"image": files})
    assert response.status_code == 200
    assert "Upload one photo at a time." in response.content.decode()
    assert Upload.objects.count() == 0
    assert media_files(media_root) == []


# Accepted: odd but real photos ----------------------------------------------------

ACCEPTED = [
    ("animated GIF", animated_gif, "note.gif", "image/gif"),
    ("CMYK JPEG", cmyk_jpeg, "note.jpg", "image/jpeg"),
    ("16-bit PNG", png_16bit, "note.png", "image/png"),
]


@pytest.mark.parametrize(
    ("data", "name", "content_type"),
    [case[1:] for case in ACCEPTED],
    ids=[case[0] for case in ACCEPTED],
)
def test_odd_but_real_photos_are_classified(user_client, media_root, data, name, content_type):
    response = user_client.post("/", {"image": uploaded(data(), name)})
    assert response.status_code == 302
    upload = Upload.objects.get()
    assert upload.content_type == content_type
    assert upload.prediction.label
    assert len(media_files(media_root)) == 3  # the photo, its thumbnail and display copy
    photo = user_client.get(f"/predictions/{upload.prediction.pk}/photo/")
    assert photo["Content-Type"] == content_type


def test_a_file_name_with_path_separators_and_unicode_goes_nowhere_near_storage(
    user_client, media_root
):
    name = "../../etc/passwd/..\\..\\Geldschein 💵 ¥€ 二十.jpg"
    response = user_client.post("/", {"image": uploaded(image_bytes(), name)})
    assert response.status_code == 302
    upload = Upload.objects.get()
    stored = [p.relative_to(media_root).as_posix() for p in media_files(media_root)]
    assert sorted(stored) == sorted([upload.file.name, upload.thumbnail.name, upload.display.name])
    assert all(p.startswith(("photos/", "thumbnails/", "display/")) and p.isascii() for p in stored)
    assert not any(".." in p or "passwd" in p for p in stored)


def test_a_valid_png_with_html_appended_is_only_ever_served_as_a_png(user_client, media_root):
    data = image_bytes(fmt="PNG") + b"<html><script>alert(document.cookie)</script></html>"
    response = user_client.post("/", {"image": uploaded(data, "note.html", "text/html")})
    assert response.status_code == 302
    upload = Upload.objects.get()
    assert upload.file.name.endswith(".png")
    photo = user_client.get(f"/predictions/{upload.prediction.pk}/photo/")
    assert photo["Content-Type"] == "image/png"
    assert photo["X-Content-Type-Options"] == "nosniff"
    assert photo["Content-Security-Policy"] == "default-src 'none'; sandbox"
    thumb = user_client.get(f"/predictions/{upload.prediction.pk}/thumbnail/")
    # The thumbnail is re-encoded: nothing of the appended page survives.
    assert b"<script" not in b"".join(thumb.streaming_content)


def exif_rotated(photo: bytes, orientation: int, turn) -> bytes:
    """The photo as a phone stores it: pixels sideways, an EXIF tag saying how to turn them."""
    img = Image.open(io.BytesIO(photo)).convert("RGB").transpose(turn)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize(
    ("orientation", "turn"),
    [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)],
    ids=["exif-6", "exif-8"],
)
def test_an_exif_rotated_phone_photo_is_seen_upright(
    user_client, media_root, shipped_predictor, use_predictor, dataset_dir, orientation, turn
):
    use_predictor(shipped_predictor)
    photo = (dataset_dir / "usd_20" / "emerson5123-767d6c5bfc3c.jpg").read_bytes()
    upright = shipped_predictor.predict(photo)
    assert upright.answer == "usd_20"
    sideways = exif_rotated(photo, orientation, turn)
    # Without its EXIF tag the sideways photo would be read lying down.
    assert Image.open(io.BytesIO(sideways)).size[::-1] == Image.open(io.BytesIO(photo)).size

    response = user_client.post("/", {"image": uploaded(sideways, "IMG_1234.JPG")})
    assert response.status_code == 302
    prediction = Prediction.objects.get()
    assert prediction.answer == "usd_20"
    assert prediction.confidence == pytest.approx(upright.confidence, abs=0.05)
    # Stored as seen: landscape, like the note.
    upload = prediction.upload
    assert (upload.width, upload.height) == Image.open(io.BytesIO(photo)).size
    assert services.image_size(Image.open(io.BytesIO(sideways))) == (upload.width, upload.height)


# The same refusals through the JSON API ------------------------------------------

API = "/api/v1/predictions/"


@pytest.fixture
def api(client, user):
    key = services.api_token_create(user=user, name="bad-input")[1]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


@pytest.mark.parametrize(
    ("data", "name", "content_type", "message"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_the_api_refuses_with_a_clear_json_message_and_nothing_left(
    api, media_root, data, name, content_type, message
):
    response = api.post(API, {"image": uploaded(data(), name, content_type)})
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert Upload.objects.count() == 0
    assert media_files(media_root) == []


def test_the_api_refuses_30_mb_with_413(api, media_root):
    data = b"\xff\xd8\xff\xe0" + b"\0" * (30 * 1024 * 1024)
    response = api.post(API, {"image": uploaded(data)})
    assert response.status_code == 413
    assert "too large" in response.json()["error"]["message"]
    assert media_files(media_root) == []


def test_the_api_answers_too_many_files_or_fields_in_json(api, media_root, settings):
    files = [uploaded(image_bytes(8, 8), f"note{i}.jpg") for i in range(101)]
    response = api.post(API, {"image": files})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_parts"
    fields = {f"field{i}": "x" for i in range(1001)}
    response = api.post(API, fields)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_parts"
    assert Upload.objects.count() == 0
    assert media_files(media_root) == []


def test_the_api_refuses_twenty_files(api, media_root):
    files = [uploaded(image_bytes(), f"note{i}.jpg") for i in range(20)]
    response = api.post(API, {"image": files})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Upload one photo at a time."
    assert Upload.objects.count() == 0
    assert media_files(media_root) == []


@pytest.mark.parametrize(
    ("data", "name", "content_type"),
    [case[1:] for case in ACCEPTED],
    ids=[case[0] for case in ACCEPTED],
)
def test_the_api_classifies_odd_but_real_photos(api, media_root, data, name, content_type):
    response = api.post(API, {"image": uploaded(data(), name)})
    assert response.status_code == 201
    assert Upload.objects.get().content_type == content_type


# Memory: the peak of a fresh process decoding each file as an upload does ----------

MEASURE = """
import json, os, resource, sys
import django
django.setup()
from classifier import services
from classifier.ml import preprocess
data = open(sys.argv[1], "rb").read()
# Measured in a child forked after the imports: its high-water mark starts at
# its size at the fork, so what the imports briefly took cannot hide the decode.
pid = os.fork()
if pid == 0:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        image = preprocess.open_image(data)
        services._thumbnail(image)
        preprocess.to_input(image)
        outcome = "classified"
    except preprocess.InvalidImage:
        outcome = "refused"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"outcome": outcome, "mb": (peak - before) / 1024}), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def peak_growth(path) -> dict:
    """How much the peak memory (ru_maxrss, so C allocations count) grows while the
    upload path decodes the file, thumbnails it and makes the model input."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "usbills_site.settings"}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", MEASURE, str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


SIDE = 7745  # 60 megapixels: just under CLASSIFIER_MAX_PIXELS

MEMORY_CASES = {
    # The report's files: each took a worker up by 529 to 1,143 MB.
    "lossless WebP 7745x7745": lambda: encoded(
        Image.new("RGB", (SIDE, SIDE), (10, 20, 30)), "WEBP", lossless=True
    ),
    "16-bit RGBA PNG 7745x7745": lambda: png_by_hand(SIDE, SIDE, bit_depth=16, colour_type=6),
    "32-bit float TIFF 7745x7745": lambda: encoded(
        Image.new("F", (SIDE, SIDE)), "TIFF", compression="tiff_adobe_deflate"
    ),
    "PNG 60,000,000x1": lambda: png_by_hand(60_000_000, 1),
    # The largest that are still accepted.
    "16-bit RGBA PNG of 16 MP": lambda: png_by_hand(4000, 4000, bit_depth=16, colour_type=6),
    "lossless WebP of 8 MP": lambda: encoded(
        Image.new("RGBA", (2828, 2828), (10, 20, 30, 40)), "WEBP", lossless=True
    ),
    "float TIFF of 16 MP": lambda: encoded(
        Image.new("F", (4000, 4000)), "TIFF", compression="tiff_adobe_deflate"
    ),
    "progressive colour JPEG of 60 MP, 64 scans": lambda: scan_bomb(
        Image.new("RGB", (SIDE, SIDE), (9, 99, 199)), 64
    ),
    "progressive grey JPEG of 60 MP, 64 scans": lambda: scan_bomb(
        Image.new("L", (SIDE, SIDE), 99), 64
    ),
}


@pytest.mark.parametrize("case", list(MEMORY_CASES))
def test_no_upload_raises_a_workers_peak_memory_by_more_than_300_mb(case, tmp_path):
    path = tmp_path / "upload"
    path.write_bytes(MEMORY_CASES[case]())
    assert path.stat().st_size <= 10 * 1024 * 1024
    measured = peak_growth(path)
    assert measured["mb"] < 300, f"{case}: {measured}"
