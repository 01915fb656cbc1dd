import pytest

from classifier.forms import FeedbackForm, HistoryFilterForm, SignupForm, UploadForm
from classifier.models import Prediction, Upload
from conftest import image_bytes, media_files, uploaded

pytestmark = pytest.mark.django_db


def _submit(user, data, name="note.jpg", content_type="image/jpeg"):
    form = UploadForm(data={}, files={"image": uploaded(data, name, content_type)}, user=user)
    prediction = form.save() if form.is_valid() else None
    return form, prediction


def test_upload_form_saves_a_photo(user):
    form, prediction = _submit(user, image_bytes())
    assert form.errors == {}
    assert isinstance(prediction, Prediction)
    assert prediction.upload.owner == user


def _refused():
    jpeg = image_bytes(200, 160)
    return [
        pytest.param(b"%PDF-1.4 not a photo at all", "image", id="text-file-named-jpg"),
        pytest.param(b"", "empty", id="empty-file"),
        pytest.param(jpeg[: len(jpeg) * 2 // 3], "incomplete", id="truncated-jpeg"),
    ]


@pytest.mark.parametrize(("data", "words"), _refused())
def test_upload_form_refuses_with_a_message_and_saves_nothing(user, media_root, data, words):
    form, prediction = _submit(user, data)

    assert prediction is None
    assert words in " ".join(form.errors["image"]).lower()
    assert not Upload.objects.exists()
    assert media_files(media_root) == []


def test_upload_form_refuses_a_file_over_the_cap(user, media_root, settings):
    settings.CLASSIFIER_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
    big = image_bytes(64, 64) + b"\0" * (10 * 1024 * 1024)  # a JPEG with junk after it

    form, prediction = _submit(user, big)

    assert prediction is None
    assert form.errors["image"] == ["This file is too large: the limit is 10 MB."]
    assert not Upload.objects.exists()
    assert media_files(media_root) == []


def test_upload_form_requires_a_file(user):
    form = UploadForm(data={}, files={}, user=user)
    assert not form.is_valid()
    assert form.errors["image"] == ["Choose a photo first."]


def test_upload_form_offers_the_camera_friendly_file_type():
    html = str(UploadForm(user=None)["image"])
    assert 'name="image"' in html
    assert 'accept="image/*"' in html


def test_signup_form_uses_djangos_field_names_and_email_is_optional():
    form = SignupForm(
        data={"username": "carol", "password1": "a-long-test-pw-9", "password2": "a-long-test-pw-9"}
    )
    assert form.is_valid(), form.errors
    user = form.save()
    assert user.check_password("a-long-test-pw-9")
    assert user.email == ""


def test_signup_form_refuses_mismatched_passwords():
    form = SignupForm(
        data={"username": "carol", "password1": "a-long-test-pw-9", "password2": "another-pw-9"}
    )
    assert not form.is_valid()
    assert "password2" in form.errors


def test_feedback_form_accepts_only_classes():
    assert FeedbackForm(data={"label": "not_a_bill"}).is_valid()
    assert not FeedbackForm(data={"label": "unknown"}).is_valid()
    assert not FeedbackForm(data={"label": "usd_3"}).is_valid()


def test_history_filter_form():
    form = HistoryFilterForm(data={"answer": "unknown", "flagged": "on"})
    assert form.is_valid()
    assert form.cleaned_data == {"answer": "unknown", "flagged": True}
    assert not HistoryFilterForm(data={"answer": "usd_3"}).is_valid()
