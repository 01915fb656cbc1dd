import re

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from classifier.models import Prediction, Upload
from conftest import image_bytes, media_files, uploaded

pytestmark = pytest.mark.django_db


# Accounts --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/predictions/",
        "/predictions/1/",
        "/predictions/1/photo/",
        "/accounts/password_change/",
    ],
)
def test_pages_need_a_signed_in_user(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize(
    "url", ["/accounts/login/", "/accounts/signup/", "/accounts/password_reset/"]
)
def test_account_pages_are_open(client, url):
    assert client.get(url).status_code == 200


def test_sign_up_logs_in_and_leads_to_the_upload_page(client, django_user_model):
    response = client.post(
        "/accounts/signup/",
        {"username": "carol", "password1": "a-long-test-pw-9", "password2": "a-long-test-pw-9"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert django_user_model.objects.filter(username="carol").exists()
    assert client.get("/").status_code == 200


def test_log_in_and_log_out(client, user):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "a-long-test-password"}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200

    assert client.get("/accounts/logout/").status_code == 405  # logging out is a POST
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_change_password(user_client, user):
    response = user_client.post(
        "/accounts/password_change/",
        {
            "old_password": "a-long-test-password",
            "new_password1": "another-long-pw-7",
            "new_password2": "another-long-pw-7",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("another-long-pw-7")


def test_reset_password_by_email(client, make_user):
    make_user("dora", email="dora@example.com")

    response = client.post("/accounts/password_reset/", {"email": "dora@example.com"})

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    response = client.get(link, follow=True)
    assert b"Choose a new password" in response.content


# Upload -----------------------------------------------------------------------


def test_upload_page_has_picker_camera_and_working_state(user_client):
    html = user_client.get("/").content.decode()
    assert 'enctype="multipart/form-data"' in html
    assert re.search(r'<input type="file" name="image"[^>]*accept="image/\*"', html)
    assert re.search(r'accept="image/\*" capture', html)
    assert 'id="working"' in html
    assert '<label for="id_image"' in html


def test_upload_redirects_to_the_result(user_client, user):
    response = user_client.post("/", {"image": uploaded(image_bytes(100, 60))})

    prediction = Prediction.objects.get()
    assert prediction.upload.owner == user
    assert response.status_code == 302
    assert response["Location"] == f"/predictions/{prediction.pk}/"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello, this is text", "image"),
        (image_bytes(200, 200)[:700], "incomplete or damaged"),
        (b"", "The file is empty."),
    ],
    ids=["text", "truncated", "empty"],
)
def test_a_refused_upload_says_why_on_the_same_page(user_client, media_root, data, message):
    response = user_client.post("/", {"image": uploaded(data, name="note.jpg")})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert not Upload.objects.exists()
    assert media_files(media_root) == []


def test_an_upload_without_a_model_is_a_clear_503(user_client, settings, use_predictor, tmp_path):
    use_predictor(None)
    settings.CLASSIFIER_MODELS_DIR = tmp_path / "nothing-here"

    response = user_client.post("/", {"image": uploaded(image_bytes())})

    assert response.status_code == 503
    assert "not available right now" in response.content.decode()
    assert not Upload.objects.exists()


# Result, photo, feedback --------------------------------------------------------


def test_result_shows_answer_confidence_top_three_and_photo(user_client, user, make_prediction):
    prediction = make_prediction(user, label="usd_20", confidence=0.93)

    html = user_client.get(f"/predictions/{prediction.pk}/").content.decode()

    assert re.search(r'data-answer="usd_20"[^>]*>\s*<span class="answer-label">\$20</span>', html)
    assert 'data-band="sure"' in html
    assert "93% sure" in html
    assert len(re.findall(r'<li data-label="', html)) == 3
    # The page shows the page-size copy and links to the original.
    assert f'src="/predictions/{prediction.pk}/display/"' in html
    assert f'href="/predictions/{prediction.pk}/photo/"' in html
    assert ">Right</button>" in html
    assert "Wrong: it is" in html


def test_result_for_an_unsure_model_says_it_cannot_identify(user_client, user, make_prediction):
    prediction = make_prediction(user, label="usd_5", confidence=0.3)

    html = user_client.get(f"/predictions/{prediction.pk}/").content.decode()

    assert 'data-answer="unknown"' in html
    assert "Can't identify this" in html
    assert "Try a flat, well-lit photo of one note" in html
    assert "Best guess: $5, only 30% sure" in html
    assert ">Right</button>" not in html
    assert 'value="not_a_bill"' in html


def test_result_between_the_bands_says_might_be_and_check_it(user_client, user, make_prediction):
    # threshold 0.6 and no card: "sure" defaults to 0.8.
    prediction = make_prediction(user, label="usd_50", confidence=0.7)

    html = user_client.get(f"/predictions/{prediction.pk}/").content.decode()

    assert 'data-band="unsure"' in html
    assert "Might be $50; check it" in html
    assert "only 70% sure" in html
    assert "Not sure. It might be a $50 note, only 70% sure. Please check it." in html
    assert ">Right</button>" in html


def test_the_stored_band_is_what_the_page_shows(user_client, user, make_prediction):
    # The band the model's card gave at upload time wins over today's defaults.
    prediction = make_prediction(user, label="usd_50", confidence=0.85, band="unsure")
    html = user_client.get(f"/predictions/{prediction.pk}/").content.decode()
    assert "Might be $50; check it" in html


def test_result_for_a_photo_that_is_no_note_says_so(user_client, user, make_prediction):
    prediction = make_prediction(user, label="not_a_bill", confidence=0.99)

    html = user_client.get(f"/predictions/{prediction.pk}/").content.decode()

    assert 'data-band="not_a_note"' in html
    assert "This doesn't look like a US note" in html
    assert "Can't identify" not in html
    assert "Best guess" not in html

    # Agreeing is "right", and the page says so in those words.
    response = user_client.post(
        f"/predictions/{prediction.pk}/feedback/", {"label": "not_a_bill"}, follow=True
    )
    html = response.content.decode()
    assert "You said this is right." in html
    assert html.count("Thanks") == 1


def test_not_a_bill_on_a_photo_without_an_answer_is_reported_as_said(
    user_client, user, make_prediction
):
    prediction = make_prediction(user, label="usd_5", confidence=0.3)

    response = user_client.post(
        f"/predictions/{prediction.pk}/feedback/", {"label": "not_a_bill"}, follow=True
    )

    html = response.content.decode()
    assert "You said: Not a bill." in html
    assert "You said this is right" not in html
    assert html.count("Thanks") == 1
    html = user_client.get("/predictions/").content.decode()
    assert "You said: Not a bill" in html
    assert "You confirmed it" not in html


def test_the_owner_sees_the_reviewers_decision(user_client, user, staff_user, make_prediction):
    from classifier import services

    prediction = make_prediction(user, label="usd_5", confidence=0.9)
    services.prediction_review(prediction=prediction, reviewer=staff_user, label="usd_50")

    html = user_client.get(f"/predictions/{prediction.pk}/").content.decode()
    assert "A reviewer checked this photo: $50." in html
    assert "Reviewer: $50" in user_client.get("/predictions/").content.decode()


def test_the_photo_is_served_to_its_owner_with_the_detected_type(user_client, user):
    data = image_bytes(90, 50)
    user_client.post("/", {"image": uploaded(data, name="x.html", content_type="text/html")})
    prediction = Prediction.objects.get()

    response = user_client.get(f"/predictions/{prediction.pk}/photo/")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == data
    thumb = user_client.get(f"/predictions/{prediction.pk}/thumbnail/")
    assert thumb.status_code == 200
    assert thumb["Content-Type"] == "image/jpeg"


def test_the_photo_goes_through_nginx_when_accel_redirect_is_on(user_client, user, settings):
    settings.MEDIA_ACCEL_REDIRECT = "/protected-media/"
    user_client.post("/", {"image": uploaded(image_bytes())})
    prediction = Prediction.objects.get()

    response = user_client.get(f"/predictions/{prediction.pk}/photo/")

    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/protected-media/{prediction.upload.file.name}"
    assert response["Content-Type"] == "image/jpeg"
    assert response.content == b""


def test_photos_are_not_at_a_public_media_url(user_client, user):
    user_client.post("/", {"image": uploaded(image_bytes())})
    name = Prediction.objects.get().upload.file.name

    assert user_client.get(f"/media/{name}").status_code == 404
    assert user_client.get(f"/{name}").status_code == 404


# Other people's predictions (404) and CSRF refusals: test_security.py.


def test_feedback_right_and_wrong(user_client, user, make_prediction):
    prediction = make_prediction(user, label="usd_20", confidence=0.9)
    url = f"/predictions/{prediction.pk}/feedback/"

    response = user_client.post(url, {"label": "usd_20"})
    assert response.status_code == 302
    prediction.refresh_from_db()
    assert (prediction.user_label, prediction.user_flagged) == ("usd_20", False)

    response = user_client.post(url, {"label": "usd_50"}, follow=True)
    prediction.refresh_from_db()
    assert (prediction.user_label, prediction.user_flagged) == ("usd_50", True)
    assert "You said: $50." in response.content.decode()


def test_feedback_with_a_bad_label_changes_nothing(user_client, user, make_prediction):
    prediction = make_prediction(user)
    response = user_client.post(f"/predictions/{prediction.pk}/feedback/", {"label": "usd_3"})
    assert response.status_code == 302
    prediction.refresh_from_db()
    assert prediction.user_label == ""


def test_the_upload_pages_csrf_token_lets_the_upload_through(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/", {"image": uploaded(image_bytes())}).status_code == 403

    client.get("/")
    token = client.cookies["csrftoken"].value
    response = client.post("/", {"image": uploaded(image_bytes()), "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Upload.objects.count() == 1


# History ------------------------------------------------------------------------


def test_history_lists_own_predictions_with_their_state(
    user_client, user, other_user, make_prediction
):
    from classifier import services

    confirmed = make_prediction(user, label="usd_10", confidence=0.88)
    flagged = make_prediction(user, label="usd_1", confidence=0.7)
    make_prediction(other_user, label="usd_100")
    services.prediction_set_feedback(prediction=confirmed, user=user, label="usd_10")
    services.prediction_set_feedback(prediction=flagged, user=user, label="usd_2")

    html = user_client.get("/predictions/").content.decode()

    assert f'href="/predictions/{confirmed.pk}/"' in html
    assert f'src="/predictions/{flagged.pk}/thumbnail/"' in html
    assert 'data-answer="usd_100"' not in html
    assert "You confirmed it" in html
    assert "You said: $2" in html
    assert "88%" in html

    html = user_client.get("/predictions/?flagged=on").content.decode()
    assert f'href="/predictions/{flagged.pk}/"' in html
    assert f'href="/predictions/{confirmed.pk}/"' not in html

    html = user_client.get("/predictions/?answer=usd_10").content.decode()
    assert f'href="/predictions/{confirmed.pk}/"' in html
    assert f'href="/predictions/{flagged.pk}/"' not in html


def test_history_is_paginated(user_client, user, make_prediction):
    for _ in range(23):
        make_prediction(user)

    first = user_client.get("/predictions/").content.decode()
    second = user_client.get("/predictions/?page=2").content.decode()

    assert first.count('class="history-item"') == 20
    assert second.count('class="history-item"') == 3
    assert "Page 1 of 2" in first
    assert 'rel="next" href="?page=2"' in first


# Health -------------------------------------------------------------------------


def test_healthz_is_open_and_names_the_model(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": "tiny-test"}


def test_healthz_fails_without_a_model(client, settings, use_predictor, tmp_path):
    use_predictor(None)
    settings.CLASSIFIER_MODELS_DIR = tmp_path / "missing"

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "error", "model": "unusable"}


# Static files ---------------------------------------------------------------------


def test_pages_render_with_hashed_static_files(user_client, settings, tmp_path):
    """What production does: collectstatic with the manifest storage, then hashed URLs."""
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)

    html = user_client.get("/").content.decode()

    assert re.search(r'href="/static/classifier/style\.[0-9a-f]{12}\.css"', html)
    assert re.search(r'src="/static/classifier/upload\.[0-9a-f]{12}\.js"', html)
    assert reverse("classifier:upload") == "/"


def test_the_display_copy_is_private_and_falls_back_to_the_original(
    user_client, user, other_user, make_prediction, client
):
    user_client.post("/", {"image": uploaded(image_bytes(900, 600))})
    mine = Prediction.objects.get(upload__owner=user)
    response = user_client.get(f"/predictions/{mine.pk}/display/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"

    older = make_prediction(user)  # made before display copies: none stored
    response = user_client.get(f"/predictions/{older.pk}/display/")
    assert response.status_code == 200

    theirs = make_prediction(other_user)
    assert user_client.get(f"/predictions/{theirs.pk}/display/").status_code == 404


def test_logging_out_says_so(user_client):
    response = user_client.post(reverse("logout"), follow=True)
    assert response.request["PATH_INFO"] == reverse("login")
    assert "You are logged out." in response.content.decode()


def test_every_page_names_the_sites_icon(user_client):
    from django.contrib.staticfiles import finders

    html = user_client.get("/").content.decode()
    icon = re.search(r'<link rel="icon" href="/static/([^"]+)"', html).group(1)
    assert finders.find(icon)


def test_page_n_of_m_keeps_its_place_between_pages(user_client, user, make_prediction):
    for _ in range(21):
        make_prediction(user)
    for number in (1, 2):
        html = user_client.get(f"/predictions/?page={number}").content.decode()
        # Three fixed slots, the middle one the page number, whichever links exist.
        assert re.search(
            rf'<span class="prev">.*</span>\s*<span>Page {number} of 2</span>\s*'
            r'<span class="next">.*</span>',
            html,
        )
