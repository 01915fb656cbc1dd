"""The JSON API: keys, uploads, history, feedback, errors, and the account page for keys."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from classifier import services
from classifier.ml import labels
from classifier.models import ApiToken, Upload
from conftest import image_bytes, uploaded

pytestmark = pytest.mark.django_db

PREDICTIONS = "/api/v1/predictions/"


@pytest.fixture
def key(user):
    return services.api_token_create(user=user, name="phone")[1]


@pytest.fixture
def api(client, key):
    """A client that sends the key, as an app would."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def _upload(api, data=None, name="note.jpg"):
    return api.post(PREDICTIONS, {"image": uploaded(data or image_bytes(), name=name)})


def test_without_credentials_the_api_answers_401_in_json(client):
    response = client.get(PREDICTIONS)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_wrong_or_revoked_key_is_refused(client, user, key):
    client.defaults["HTTP_AUTHORIZATION"] = "Bearer usb_not-a-key"
    assert client.get(PREDICTIONS).status_code == 401

    token = ApiToken.objects.get(user=user)
    services.api_token_revoke(token=token, user=user)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    assert client.get(PREDICTIONS).json()["error"]["code"] == "invalid_token"


def test_upload_answers_the_prediction(api, user):
    response = _upload(api)

    assert response.status_code == 201
    body = response.json()
    assert body["answer"] in [*labels.NOTES, labels.UNKNOWN]
    assert body["label"] in labels.CLASSES
    assert set(body["probabilities"]) == set(labels.CLASSES)
    assert body["model_version"] == "tiny-test"
    assert body["feedback"] == {"label": None, "flagged": False}
    assert body["links"]["self"].endswith(f"/api/v1/predictions/{body['id']}/")
    assert response["Location"] == f"/api/v1/predictions/{body['id']}/"
    prediction = user.uploads.get().prediction
    assert prediction.pk == body["id"]
    assert prediction.model.version == "tiny-test"


def test_upload_errors_are_json_with_the_forms_messages(api, settings):
    no_image = api.post(PREDICTIONS, {})
    assert no_image.status_code == 400
    assert no_image.json()["error"]["fields"]["image"] == ["Choose a photo first."]

    not_an_image = _upload(api, b"plain text, not a photo", name="x.jpg")
    assert not_an_image.status_code == 400
    assert not_an_image.json()["error"]["code"] == "invalid"

    settings.CLASSIFIER_MAX_UPLOAD_BYTES = 100
    too_large = _upload(api, image_bytes(400, 400))
    assert too_large.status_code == 413
    assert "too large" in too_large.json()["error"]["message"]


def test_a_malformed_body_is_a_json_400(api):
    response = api.generic("POST", PREDICTIONS, b"garbage", content_type="multipart/form-data")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_body"


def test_uploads_share_the_forms_rate_limit(api, settings):
    settings.CLASSIFIER_UPLOAD_RATE = "1/m"
    assert _upload(api).status_code == 201

    response = _upload(api)

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "too_many_uploads"
    assert response.json()["error"]["retry_after"] >= 1


def test_an_upload_without_a_model_is_a_json_503_saving_nothing(
    api, settings, use_predictor, tmp_path
):
    use_predictor(None)
    settings.CLASSIFIER_MODELS_DIR = tmp_path / "nothing-here"

    response = _upload(api)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert not Upload.objects.exists()


def test_list_shows_only_the_callers_predictions_page_by_page(
    api, user, other_user, make_prediction
):
    mine = [make_prediction(user) for _ in range(21)]
    make_prediction(other_user)

    first = api.get(PREDICTIONS).json()
    second = api.get(PREDICTIONS, {"page": 2}).json()

    assert first["count"] == 21
    assert first["pages"] == 2
    assert first["next"].endswith("?page=2")
    assert first["previous"] is None
    ids = [p["id"] for p in first["results"] + second["results"]]
    assert sorted(ids) == sorted(p.pk for p in mine)
    assert api.get(PREDICTIONS, {"page": 3}).status_code == 404
    assert api.get(PREDICTIONS, {"page": "x"}).status_code == 404


def test_detail_and_feedback_only_for_the_owner(api, user, other_user, make_prediction):
    mine = make_prediction(user, label="usd_20")
    theirs = make_prediction(other_user)

    assert api.get(f"{PREDICTIONS}{mine.pk}/").json()["answer"] == "usd_20"
    assert api.get(f"{PREDICTIONS}{theirs.pk}/").status_code == 404
    response = api.post(
        f"{PREDICTIONS}{theirs.pk}/feedback/", {"label": "usd_5"}, content_type="application/json"
    )
    assert response.status_code == 404


def test_feedback_records_the_users_label(api, user, make_prediction):
    prediction = make_prediction(user, label="usd_20")

    response = api.post(
        f"{PREDICTIONS}{prediction.pk}/feedback/",
        {"label": "usd_50"},
        content_type="application/json",
    )

    assert response.status_code == 200
    assert response.json()["feedback"] == {"label": "usd_50", "flagged": True}
    prediction.refresh_from_db()
    assert (prediction.user_label, prediction.label) == ("usd_50", "usd_20")
    bad = api.post(f"{PREDICTIONS}{prediction.pk}/feedback/", {"label": "usd_3"})
    assert bad.status_code == 400


def test_wrong_method_is_405(api):
    response = api.delete(PREDICTIONS)
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"


def test_a_session_needs_the_csrf_token(user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)

    refused = browser.post(PREDICTIONS, {"image": uploaded(image_bytes())})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"

    browser.get(reverse("classifier:upload"))  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    accepted = browser.post(PREDICTIONS, {"image": uploaded(image_bytes())}, HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201
    assert browser.get(PREDICTIONS).json()["count"] == 1


def test_the_account_page_makes_a_key_once_and_revokes_it(user_client, user, client):
    made = user_client.post(reverse("classifier:tokens"), {"name": "script"})
    # Redirect after POST: reloading the page that shows the key makes no second key.
    assert made.status_code == 302
    page = user_client.get(made["Location"])

    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    key = re.search(r"<code data-key>(usb_[\w-]+)</code>", page.content.decode()).group(1)
    token = ApiToken.objects.get(user=user)
    # Only a hash is kept, and the key is not shown again, not even on a reload.
    assert key not in str(token.__dict__)
    assert key not in user_client.get(reverse("classifier:tokens")).content.decode()
    assert ApiToken.objects.filter(user=user).count() == 1
    caller = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert caller.get(PREDICTIONS).status_code == 200
    token.refresh_from_db()
    assert token.last_used is not None

    # Revoking asks first; only the POST from that page revokes.
    revoke_url = reverse("classifier:token_revoke", args=[token.pk])
    confirm = user_client.get(revoke_url).content.decode()
    assert "Revoke the key “script”?" in confirm
    assert caller.get(PREDICTIONS).status_code == 200
    user_client.post(revoke_url)

    assert caller.get(PREDICTIONS).status_code == 401
    html = user_client.get(reverse("classifier:tokens")).content.decode()
    assert "1 revoked key not shown" in html
    assert token.prefix not in html


def test_nobody_else_can_revoke_a_key(user, other_user, client):
    token, _ = services.api_token_create(user=user, name="mine")
    client.force_login(other_user)

    assert client.post(reverse("classifier:token_revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.is_active


def test_an_empty_key_name_is_refused(user_client, user):
    response = user_client.post(reverse("classifier:tokens"), {"name": "  "}, follow=True)
    assert "Give the key a name." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_schema_and_docs_are_public_and_self_contained(client):
    schema = client.get("/api/v1/schema/").json()
    assert schema["openapi"].startswith("3.")
    assert "/predictions/" in schema["paths"]

    docs = client.get("/api/v1/docs/")
    html = docs.content.decode()
    assert docs.status_code == 200
    assert "POST" in html
    assert "/api/v1/predictions/" in html
    # The site's own page, Markdown code set as code, and an example answer.
    assert 'class="site-header"' in html
    assert "`" not in re.sub(r"<details>.*</details>", "", html, flags=re.S)
    assert "&quot;band&quot;: &quot;sure&quot;" in html
    # Nothing fetched from elsewhere.
    assert not re.search(r"""(src|href)=["']https?://""", html)


def test_staff_can_revoke_a_key_in_the_admin(client, user, staff_user, key):
    token = ApiToken.objects.get(user=user)
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:classifier_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )

    assert response.status_code == 302
    caller = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert caller.get(PREDICTIONS).status_code == 401


def test_a_prediction_says_its_band_and_the_reviewers_label(api, user, staff_user, make_prediction):
    prediction = make_prediction(user, label="usd_50", confidence=0.7)
    body = api.get(f"{PREDICTIONS}{prediction.pk}/").json()
    assert (body["band"], body["headline"]) == ("unsure", "Might be $50")
    assert body["review"] == {"label": None}

    services.prediction_review(prediction=prediction, reviewer=staff_user, label="usd_5")
    assert api.get(f"{PREDICTIONS}{prediction.pk}/").json()["review"] == {"label": "usd_5"}
