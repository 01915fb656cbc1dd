"""Who may see and do what: other users' data, the admin, CSRF, sign-in
throttling, the upload rate limit and the production cookie settings.

Runs against the real database, the real cache (the local Redis, as in
compose) and the real upload service with the tiny model.
"""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client

from classifier import ratelimit
from classifier.models import Prediction, Upload
from conftest import REDIS_AVAILABLE, REPO, TINY_MODELS, image_bytes, media_files, uploaded

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"


# Other people's things: 404, never 403 -------------------------------------

OWNER_ONLY = [
    ("get", "/predictions/{pk}/"),
    ("get", "/predictions/{pk}/photo/"),
    ("get", "/predictions/{pk}/thumbnail/"),
    ("post", "/predictions/{pk}/feedback/"),
]


@pytest.mark.parametrize(("method", "url"), OWNER_ONLY)
def test_another_users_prediction_is_not_found(
    client, user, other_user, make_prediction, method, url
):
    prediction = make_prediction(other_user)
    client.force_login(user)
    response = getattr(client, method)(url.format(pk=prediction.pk), {"label": "usd_5"})
    assert response.status_code == 404
    prediction.refresh_from_db()
    assert prediction.user_label == ""


@pytest.mark.parametrize(("method", "url"), OWNER_ONLY)
def test_the_owner_may(client, user, make_prediction, method, url):
    prediction = make_prediction(user)
    client.force_login(user)
    response = getattr(client, method)(url.format(pk=prediction.pk), {"label": "usd_5"})
    assert response.status_code in (200, 302)


def test_staff_may_see_but_not_give_feedback_for_others(client, user, staff_user, make_prediction):
    prediction = make_prediction(user)
    client.force_login(staff_user)
    assert client.get(f"/predictions/{prediction.pk}/photo/").status_code == 200
    assert (
        client.post(f"/predictions/{prediction.pk}/feedback/", {"label": "usd_5"}).status_code
        == 404
    )


@pytest.mark.parametrize(
    "query", ["", "?answer=usd_20", "?flagged=on", "?answer=usd_20&flagged=on"]
)
def test_history_and_its_filters_show_only_ones_own(
    client, user, other_user, make_prediction, query
):
    mine = make_prediction(user, user_flagged=True, user_label="usd_5")
    theirs = make_prediction(other_user, user_flagged=True, user_label="usd_5")
    client.force_login(user)
    body = client.get(f"/predictions/{query}").content.decode()
    assert f"/predictions/{mine.pk}/" in body
    assert f"/predictions/{theirs.pk}/" not in body


@pytest.mark.parametrize(
    "url", ["/admin/", "/admin/classifier/prediction/", "/admin/classifier/user/"]
)
def test_non_staff_get_no_admin(client, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_get_the_admin(client, staff_user):
    client.force_login(staff_user)
    assert client.get("/admin/classifier/prediction/").status_code == 200


# CSRF on every state change ---------------------------------------------------


def _csrf_cases(user, prediction):
    return [
        ("/", {"image": uploaded(image_bytes())}),
        (f"/predictions/{prediction.pk}/feedback/", {"label": "usd_5"}),
        ("/accounts/logout/", {}),
        ("/accounts/password_change/", {"old_password": PASSWORD}),
        (f"/admin/classifier/prediction/{prediction.pk}/change/", {}),
    ]


CSRF_URLS = 5


@pytest.mark.parametrize("case", range(CSRF_URLS))
def test_state_changes_need_the_csrf_token(user, staff_user, make_prediction, media_root, case):
    prediction = make_prediction(user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user if "admin" in _csrf_cases(user, prediction)[case][0] else user)
    url, data = _csrf_cases(user, prediction)[case]
    before = Upload.objects.count(), len(media_files(media_root))
    response = client.post(url, data)
    assert response.status_code == 403
    assert (Upload.objects.count(), len(media_files(media_root))) == before
    prediction.refresh_from_db()
    assert prediction.user_label == ""


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/accounts/login/", {"username": "alice", "password": PASSWORD}),
        ("/accounts/signup/", {"username": "x", "password1": PASSWORD, "password2": PASSWORD}),
    ],
)
def test_anonymous_forms_need_the_csrf_token(user, url, data):
    assert Client(enforce_csrf_checks=True).post(url, data).status_code == 403


# Sign-in throttling (django-axes, in the cache) -------------------------------


def _login(client, password, ip="203.0.113.7"):
    return client.post(
        "/accounts/login/",
        {"username": "alice", "password": password},
        HTTP_X_REAL_IP=ip,
    )


def test_repeated_failed_sign_ins_lock_the_account_for_that_address(client, user):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "wrong").status_code == 200  # the form, with its error
    response = _login(client, "wrong")
    assert response.status_code == 429
    assert "Too many tries" in response.content.decode()
    # Locked out even with the right password now...
    assert _login(client, PASSWORD).status_code == 429
    # ...but not from another address: a stranger cannot lock alice out everywhere.
    assert _login(Client(), PASSWORD, ip="198.51.100.9").status_code == 302


def test_a_successful_sign_in_resets_the_count(client, user):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(Client(), "wrong").status_code == 200


# Upload rate limit -------------------------------------------------------------


def test_uploads_beyond_the_rate_get_a_friendly_429(client, user, media_root, settings):
    settings.CLASSIFIER_UPLOAD_RATE = "3/m"
    client.force_login(user)
    for _ in range(3):
        assert client.post("/", {"image": uploaded(image_bytes())}).status_code == 302
    files = media_files(media_root)
    response = client.post("/", {"image": uploaded(image_bytes())})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    body = response.content.decode()
    assert "uploaded a lot of photos" in body
    assert 'role="alert"' in body
    # Refused before anything was stored.
    assert Upload.objects.count() == 3
    assert media_files(media_root) == files
    # The upload page itself still works, and other users are not affected.
    assert client.get("/").status_code == 200
    other = Client()
    other.force_login(type(user).objects.create_user("dave", password=PASSWORD))
    assert other.post("/", {"image": uploaded(image_bytes())}).status_code == 302


def test_the_count_is_shared_by_every_process(user, settings):
    """The count lives in Redis: a second process sees the hits of the first."""
    if not REDIS_AVAILABLE:
        pytest.skip("no Redis at REDIS_URL or 127.0.0.1:6379")
    settings.CLASSIFIER_UPLOAD_RATE = "2/h"
    assert ratelimit.upload_rate_hit(user=user).allowed
    code = "\n".join(
        [
            "import django",
            "django.setup()",
            "from django.conf import settings",
            f"settings.CACHES = {settings.CACHES!r}",
            "settings.CLASSIFIER_UPLOAD_RATE = '2/h'",
            "from classifier import ratelimit, models",
            f"u = models.User(pk={user.pk})",
            "print(*(ratelimit.upload_rate_hit(user=u).allowed for _ in range(2)))",
        ]
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "usbills_site.settings"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "False"]  # hit 2 of 2, then over
    assert not ratelimit.upload_rate_hit(user=user).allowed


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [("30/m", (30, 60)), ("500/h", (500, 3600)), ("10/5m", (10, 300)), ("off", None), ("0", None)],
)
def test_rates(rate, parsed):
    assert ratelimit.parse_rate(rate) == parsed


def test_a_bad_rate_is_refused():
    with pytest.raises(ValueError, match="not a rate"):
        ratelimit.parse_rate("30/fortnight")


def test_the_rate_limit_can_be_turned_off(client, user, settings):
    settings.CLASSIFIER_UPLOAD_RATE = "off"
    client.force_login(user)
    for _ in range(4):
        assert client.post("/", {"image": uploaded(image_bytes())}).status_code == 302
    assert Prediction.objects.count() == 4


# Production settings ------------------------------------------------------------

PROD_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "test-" + "k" * 60,
    "DJANGO_ALLOWED_HOSTS": "bills.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://bills.example.com",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def _production(code):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REDIS_"))}
    # The committed tiny model: the model check passes before models/ has one.
    env.update(PROD_ENV, DJANGO_SETTINGS_MODULE="usbills_site.settings")
    env["CLASSIFIER_MODELS_DIR"] = str(TINY_MODELS / "tiny-model")
    return subprocess.run(
        [sys.executable, *code], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )


def test_production_settings_are_secure_and_take_the_key_from_the_environment():
    out = _production(
        [
            "-c",
            "import os; from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE,"
            " s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_SECURE, s.CSRF_COOKIE_HTTPONLY,"
            " s.DEBUG, s.CACHES['default']['BACKEND'].rsplit('.', 1)[1],"
            " s.SECRET_KEY == os.environ['DJANGO_SECRET_KEY'])",
        ]
    )
    assert out.stdout.split() == [
        "True",
        "True",
        "True",
        "True",
        "False",
        "TolerantRedisCache",
        "True",
    ], out.stderr


def test_check_deploy_is_clean():
    out = _production(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_secret_in_the_repository():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert ".env" not in tracked
    example = (REPO / ".env.example").read_text()
    for line in example.splitlines():
        if line.startswith(("DJANGO_SECRET_KEY=", "POSTGRES_PASSWORD=")):
            assert line.split("=", 1)[1] == "", line
