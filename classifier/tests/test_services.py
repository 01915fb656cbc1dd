import hashlib
import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from PIL import Image

from classifier import services, serving
from classifier.ml import labels
from classifier.models import Prediction, Upload
from conftest import image_bytes, media_files, uploaded

pytestmark = pytest.mark.django_db


def test_upload_create_stores_photo_and_everything_the_model_said(user, media_root):
    data = image_bytes(120, 80)

    prediction = services.upload_create(user=user, file=uploaded(data, name="my-note.jpg"))

    upload = prediction.upload
    assert upload.owner == user
    assert upload.size == len(data)
    assert (upload.width, upload.height) == (120, 80)
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    assert upload.content_type == "image/jpeg"
    # Stored under a random name, never the user's file name.
    assert "my-note" not in upload.file.name
    assert upload.file.name.startswith("photos/")
    assert upload.file.name.endswith(".jpg")
    assert (media_root / upload.file.name).read_bytes() == data
    thumb = Image.open(media_root / upload.thumbnail.name)
    assert thumb.format == "JPEG"
    assert max(thumb.size) <= services.THUMBNAIL_SIZE

    assert prediction.model_version == "tiny-test"
    assert list(prediction.probabilities) == list(labels.CLASSES)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)
    assert prediction.confidence == pytest.approx(prediction.probabilities[prediction.label])
    assert prediction.answer in (*labels.NOTES, labels.UNKNOWN)
    assert prediction.threshold == 0.5
    assert prediction.band == serving.get_predictor().bands.band(
        prediction.label, prediction.confidence
    )
    assert prediction.inference_ms > 0
    assert not prediction.user_label
    assert not prediction.reviewed_label


def test_upload_create_gives_the_same_answer_as_the_predictor(user, tiny_predictor):
    data = image_bytes(200, 90, color=(200, 30, 30))

    prediction = services.upload_create(user=user, file=uploaded(data))

    expected = tiny_predictor.predict(data)
    assert prediction.label == expected.label
    assert prediction.answer == expected.answer
    assert prediction.probabilities == pytest.approx(expected.probabilities)


@pytest.mark.parametrize(
    ("fmt", "content_type", "ext"),
    [
        ("JPEG", "image/jpeg", "jpg"),
        ("PNG", "image/png", "png"),
        ("GIF", "image/gif", "gif"),
        ("WEBP", "image/webp", "webp"),
    ],
)
def test_upload_create_keeps_the_detected_type_not_the_claimed_one(
    user, media_root, fmt, content_type, ext
):
    data = image_bytes(fmt=fmt)

    prediction = services.upload_create(
        user=user, file=uploaded(data, name="photo.exe", content_type="text/html")
    )

    assert prediction.upload.content_type == content_type
    assert prediction.upload.file.name.endswith("." + ext)


def test_upload_create_reports_the_upright_size_of_a_rotated_photo(user):
    img = Image.new("RGB", (100, 60), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)

    prediction = services.upload_create(user=user, file=uploaded(out.getvalue()))

    assert (prediction.upload.width, prediction.upload.height) == (60, 100)


def test_upload_names_are_random_and_distinct(user):
    data = image_bytes()
    a = services.upload_create(user=user, file=uploaded(data))
    b = services.upload_create(user=user, file=uploaded(data))
    assert a.upload.file.name != b.upload.file.name
    assert a.upload.sha256 == b.upload.sha256


def _refusals():
    jpeg = image_bytes(200, 200)
    return [
        pytest.param(b"just some text, not a photo\n", "image", id="text-named-jpg"),
        pytest.param(b"", "empty", id="empty"),
        pytest.param(jpeg[: len(jpeg) // 2], "incomplete", id="truncated-jpeg"),
        pytest.param(b"GIF89a" + b"\x00" * 20, "image", id="broken-gif-header"),
    ]


@pytest.mark.parametrize(("data", "words"), _refusals())
def test_upload_create_refuses_what_is_not_a_readable_photo(user, media_root, data, words):
    with pytest.raises(ValidationError) as excinfo:
        services.upload_create(user=user, file=uploaded(data, name="note.jpg"))

    assert words in excinfo.value.messages[0].lower()
    assert not Upload.objects.exists()
    assert not Prediction.objects.exists()
    assert media_files(media_root) == []


def test_upload_create_refuses_a_file_over_the_size_cap(user, media_root, settings):
    data = image_bytes(300, 300)
    settings.CLASSIFIER_MAX_UPLOAD_BYTES = len(data) - 1

    with pytest.raises(ValidationError, match="too large"):
        services.upload_create(user=user, file=uploaded(data))

    assert not Upload.objects.exists()
    assert media_files(media_root) == []


def test_upload_create_accepts_a_file_exactly_at_the_cap(user, settings):
    data = image_bytes(300, 300)
    settings.CLASSIFIER_MAX_UPLOAD_BYTES = len(data)

    assert services.upload_create(user=user, file=uploaded(data)).upload.size == len(data)


def test_upload_create_refuses_too_many_pixels(user, media_root, settings):
    settings.CLASSIFIER_MAX_PIXELS = 1000
    data = image_bytes(50, 50)  # 2,500 pixels, a small file

    with pytest.raises(ValidationError, match="too many pixels"):
        services.upload_create(user=user, file=uploaded(data))

    assert not Upload.objects.exists()
    assert media_files(media_root) == []


def test_a_failed_save_leaves_no_row_and_no_file(make_user, media_root, django_user_model):
    unsaved = django_user_model(username="ghost")  # the database cannot reference it

    with pytest.raises(ValueError, match="unsaved"):
        services.upload_create(user=unsaved, file=uploaded(image_bytes()))

    assert not Upload.objects.exists()
    assert not Prediction.objects.exists()
    assert media_files(media_root) == []


# Feedback ---------------------------------------------------------------------


def test_right_records_the_answer_without_a_flag(user, make_prediction):
    prediction = make_prediction(user, label="usd_20", confidence=0.95)

    services.prediction_set_feedback(prediction=prediction, user=user, label="usd_20")

    prediction.refresh_from_db()
    assert prediction.user_label == "usd_20"
    assert prediction.user_flagged is False
    assert prediction.user_labelled_at is not None


def test_wrong_flags_it_and_keeps_what_the_model_said(user, make_prediction):
    prediction = make_prediction(user, label="usd_20", confidence=0.95)
    said = (prediction.label, prediction.confidence, prediction.answer, prediction.probabilities)

    services.prediction_set_feedback(prediction=prediction, user=user, label="usd_50")

    prediction.refresh_from_db()
    assert prediction.user_label == "usd_50"
    assert prediction.user_flagged is True
    assert (prediction.label, prediction.confidence, prediction.answer) == said[:3]
    assert prediction.probabilities == said[3]


def test_not_a_bill_agrees_with_a_model_that_saw_no_bill(user, make_prediction):
    prediction = make_prediction(user, label="not_a_bill", confidence=0.9)
    assert prediction.answer == labels.UNKNOWN

    services.prediction_set_feedback(prediction=prediction, user=user, label="not_a_bill")

    assert prediction.user_flagged is False


def test_any_label_flags_a_note_the_model_was_unsure_of(user, make_prediction):
    prediction = make_prediction(user, label="usd_5", confidence=0.3)
    assert prediction.answer == labels.UNKNOWN

    services.prediction_set_feedback(prediction=prediction, user=user, label="not_a_bill")

    assert prediction.user_flagged is True


def test_feedback_can_be_changed(user, make_prediction):
    prediction = make_prediction(user, label="usd_20")
    services.prediction_set_feedback(prediction=prediction, user=user, label="usd_50")
    services.prediction_set_feedback(prediction=prediction, user=user, label="usd_20")
    prediction.refresh_from_db()
    assert (prediction.user_label, prediction.user_flagged) == ("usd_20", False)


def test_only_the_owner_gives_feedback(user, other_user, make_prediction):
    prediction = make_prediction(user)
    with pytest.raises(PermissionDenied):
        services.prediction_set_feedback(prediction=prediction, user=other_user, label="usd_1")
    prediction.refresh_from_db()
    assert prediction.user_label == ""


def test_feedback_refuses_an_unknown_label(user, make_prediction):
    prediction = make_prediction(user)
    with pytest.raises(ValidationError):
        services.prediction_set_feedback(prediction=prediction, user=user, label="usd_3")


# Review -------------------------------------------------------------------------


def test_review_records_who_and_when_and_keeps_the_model_output(user, staff_user, make_prediction):
    prediction = make_prediction(user, label="usd_20", confidence=0.97)

    services.prediction_review(prediction=prediction, reviewer=staff_user, label="usd_50")

    prediction.refresh_from_db()
    assert prediction.reviewed_label == "usd_50"
    assert prediction.reviewed_by == staff_user
    assert prediction.reviewed_at is not None
    assert (prediction.label, prediction.answer) == ("usd_20", "usd_20")
    assert prediction.confidence == 0.97


def test_review_can_be_cleared(user, staff_user, make_prediction):
    prediction = make_prediction(user)
    services.prediction_review(prediction=prediction, reviewer=staff_user, label="usd_1")
    services.prediction_review(prediction=prediction, reviewer=staff_user, label="")
    prediction.refresh_from_db()
    assert (prediction.reviewed_label, prediction.reviewed_by, prediction.reviewed_at) == (
        "",
        None,
        None,
    )


def test_review_refuses_an_unknown_label(user, staff_user, make_prediction):
    prediction = make_prediction(user)
    with pytest.raises(ValidationError):
        services.prediction_review(prediction=prediction, reviewer=staff_user, label="unknown")


def test_confirm_uses_the_models_answer(user, staff_user, make_prediction):
    note = make_prediction(user, label="usd_10", confidence=0.9)
    no_bill = make_prediction(user, label="not_a_bill", confidence=0.8)
    unsure = make_prediction(user, label="usd_5", confidence=0.3)

    assert services.prediction_confirm(prediction=note, reviewer=staff_user) is True
    assert services.prediction_confirm(prediction=no_bill, reviewer=staff_user) is True
    assert services.prediction_confirm(prediction=unsure, reviewer=staff_user) is False

    for p in (note, no_bill, unsure):
        p.refresh_from_db()
    assert (note.reviewed_label, no_bill.reviewed_label, unsure.reviewed_label) == (
        "usd_10",
        "not_a_bill",
        "",
    )
    assert default_storage.exists(note.upload.file.name)


def test_every_format_the_ml_library_accepts_has_a_served_type():
    from classifier.ml import preprocess

    assert set(preprocess.FORMATS) <= set(services.FORMAT_TYPES)


def test_upload_create_makes_a_page_size_copy_of_a_phone_photo(user, media_root, dataset_dir):
    """A 12-megapixel phone photo gets a display copy far below the original."""
    source = Image.open(next((dataset_dir / "usd_20").glob("*.jpg"))).convert("RGB")
    big = io.BytesIO()
    source.resize((4000, 3000), Image.Resampling.BICUBIC).save(big, "JPEG", quality=92)

    prediction = services.upload_create(user=user, file=uploaded(big.getvalue()))

    upload = prediction.upload
    assert upload.display.name.startswith("display/")
    shown = media_root / upload.display.name
    size = shown.stat().st_size
    assert size <= 150 * 1024, size
    assert size < upload.size / 10
    with Image.open(shown) as img:
        assert img.format == "JPEG"
        assert max(img.size) <= services.DISPLAY_SIZE
        # The upright photo's shape, not a square or a crop.
        assert img.size[0] / img.size[1] == pytest.approx(4 / 3, rel=0.02)


def test_display_rendition_caps_the_longest_side():
    img = Image.new("RGB", (3000, 1000), (90, 140, 60))
    with Image.open(io.BytesIO(services.display_rendition(img).read())) as out:
        assert out.size == (services.DISPLAY_SIZE, services.DISPLAY_SIZE // 3)
