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
from django.http import HttpResponse
from django.test import Client

from classifier import ratelimit
from classifier.middleware import ProxyHeadersMiddleware
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


# Forwarding headers: believed only from the proxies the deployment names -------

OUTSIDER = "203.0.113.50"  # reaching gunicorn directly, not through nginx


def test_a_forged_x_real_ip_does_not_dodge_the_sign_in_lockout(client, user):
    # Each try claims a new address; from an untrusted peer none of them counts.
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/accounts/login/",
            {"username": "alice", "password": "wrong"},
            REMOTE_ADDR=OUTSIDER,
            HTTP_X_REAL_IP=f"198.51.100.{n}",
        )
    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD},
        REMOTE_ADDR=OUTSIDER,
        HTTP_X_REAL_IP="198.51.100.200",
    )
    assert response.status_code == 429


@pytest.mark.parametrize(
    ("peer", "trusted", "expected"),
    [
        ("127.0.0.1", ["127.0.0.1", "::1"], "198.51.100.7"),  # nginx on the same machine
        (OUTSIDER, ["127.0.0.1", "::1"], OUTSIDER),  # anyone else: their own address
        ("10.0.3.4", ["10.0.0.0/8"], "198.51.100.7"),  # a proxy network
        ("10.0.3.4", ["*"], "198.51.100.7"),
        ("", ["127.0.0.1"], ""),  # a Unix socket
    ],
)
def test_client_ip_believes_x_real_ip_only_from_trusted_proxies(
    rf, settings, peer, trusted, expected
):
    settings.TRUSTED_PROXIES = trusted
    request = rf.get("/", REMOTE_ADDR=peer, HTTP_X_REAL_IP="198.51.100.7")
    assert ratelimit.client_ip(request) == expected


def test_untrusted_peers_lose_every_forwarding_header(rf, settings):
    seen = {}

    def capture(request):
        seen.update(request.META)
        return HttpResponse()

    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    headers = {
        "HTTP_X_REAL_IP": "1.2.3.4",
        "HTTP_X_FORWARDED_FOR": "1.2.3.4",
        "HTTP_X_FORWARDED_HOST": "evil.example:31337",
        "HTTP_X_FORWARDED_PROTO": "https",
    }
    ProxyHeadersMiddleware(capture)(rf.get("/", REMOTE_ADDR=OUTSIDER, **headers))
    assert not set(headers) & set(seen)
    seen.clear()
    ProxyHeadersMiddleware(capture)(rf.get("/", REMOTE_ADDR="127.0.0.1", **headers))
    assert set(headers) <= set(seen)


def _access_log_client(peer, header_value, allow):
    import runpy
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    conf = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    cfg = Config()
    cfg.set("forwarded_allow_ips", allow)
    cfg.set("access_log_format", conf["access_log_format"])
    logger = conf["AccessLogger"](cfg)
    environ = {
        "REMOTE_ADDR": peer,
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_X_REAL_IP": header_value,
        "HTTP_X_FORWARDED_FOR": header_value,
    }
    req = SimpleNamespace(headers=[("X-REAL-IP", header_value)])
    resp = SimpleNamespace(status="200 OK", sent=10, headers=[])
    return logger.atoms(resp, req, environ, timedelta(seconds=0))["client"]


def test_the_access_log_names_the_peer_unless_a_trusted_proxy_forwarded():
    assert _access_log_client(OUTSIDER, "10.9.9.9", "127.0.0.1,::1") == OUTSIDER
    assert _access_log_client("127.0.0.1", "198.51.100.7", "127.0.0.1,::1") == "198.51.100.7"


def test_gunicorn_listens_on_loopback_unless_told_otherwise(monkeypatch):
    import runpy

    monkeypatch.delenv("GUNICORN_BIND", raising=False)
    assert runpy.run_path(str(REPO / "gunicorn.conf.py"))["bind"] == "127.0.0.1:8000"


# Request bodies: capped before they are read --------------------------------------


def test_an_anonymous_post_claiming_1_5_gb_is_refused_unread(client):
    # The claim alone is enough: the body is never read, so nothing is sent here.
    response = client.post(
        "/accounts/login/",
        data=b"",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(1_500 * 1024 * 1024),
    )
    assert response.status_code == 413
    assert "too large" in response.content.decode()


def test_form_fields_are_capped_too(client):
    body = "username=" + "a" * (300 * 1024) + "&password=x"
    response = client.post(
        "/accounts/login/", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400


# The upload rate limit under concurrency, on the database cache -------------------


@pytest.mark.django_db(transaction=True)
def test_the_database_cache_counts_concurrent_uploads_exactly(settings, make_user):
    import threading

    from django.core.management import call_command
    from django.db import connections

    settings.CACHES = {
        "default": {
            "BACKEND": "classifier.cache.CountingDatabaseCache",
            "LOCATION": "usbills_test_counts",
        }
    }
    call_command("createcachetable", verbosity=0)
    settings.CLASSIFIER_UPLOAD_RATE = "30/h"
    user = make_user("racer")
    barrier = threading.Barrier(16)
    allowed = []

    def upload_four_times():
        try:
            barrier.wait()
            for _ in range(4):
                allowed.append(ratelimit.upload_rate_hit(user=user).allowed)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=upload_four_times) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 64
    assert allowed.count(True) == 30


# Sign-up and password reset: throttled per client and per address ---------------


def _signup(n, ip="192.0.2.10", **extra):
    return Client().post(
        "/accounts/signup/",
        {"username": f"newcomer{n}", "password1": PASSWORD, "password2": PASSWORD},
        REMOTE_ADDR=ip,
        **extra,
    )


def test_sign_ups_are_throttled_per_client(settings):
    settings.CLASSIFIER_ACCOUNT_RATE = "5/h"
    for n in range(5):
        assert _signup(n).status_code == 302
    response = _signup(5)
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert "too many sign-ups" in response.content.decode()
    # A forged X-Real-IP from an untrusted peer changes nothing...
    assert _signup(6, HTTP_X_REAL_IP="198.51.100.77").status_code == 429
    # ...another client is not affected.
    assert _signup(7, ip="192.0.2.11").status_code == 302


def _reset(email, ip="192.0.2.20", **extra):
    return Client().post("/accounts/password_reset/", {"email": email}, REMOTE_ADDR=ip, **extra)


def test_reset_mails_are_throttled_per_address(make_user, settings, mailoutbox):
    settings.CLASSIFIER_RESET_MAIL_RATE = "3/h"
    make_user("carol", email="carol@example.com")
    for n in range(3):
        assert _reset("carol@example.com", ip=f"192.0.2.{30 + n}").status_code == 302
    assert _reset("Carol@Example.com", ip="192.0.2.40").status_code == 429
    assert len(mailoutbox) == 3


def test_reset_requests_are_throttled_per_client(make_user, settings, mailoutbox):
    settings.CLASSIFIER_ACCOUNT_RATE = "5/h"
    for n in range(5):
        assert _reset(f"nobody{n}@example.com").status_code == 302
    assert _reset("nobody9@example.com").status_code == 429


# Password-reset links: never steered by the request's headers -------------------


def test_x_forwarded_host_does_not_reach_reset_links(make_user, mailoutbox):
    make_user("carol", email="carol@example.com")
    response = _reset("carol@example.com", ip="127.0.0.1", HTTP_X_FORWARDED_HOST="localhost:31337")
    assert response.status_code == 302
    assert "31337" not in mailoutbox[0].body
    assert "http://testserver/accounts/reset/" in mailoutbox[0].body


def test_a_pinned_site_url_is_used_whatever_the_host(make_user, settings, mailoutbox):
    settings.SITE_URL = "https://bills.example.com"
    settings.ALLOWED_HOSTS = ["bills.example.com", "localhost"]
    make_user("carol", email="carol@example.com")
    _reset("carol@example.com", HTTP_HOST="localhost:31337")
    assert "https://bills.example.com/accounts/reset/" in mailoutbox[0].body
    assert "31337" not in mailoutbox[0].body


def test_without_a_mail_host_production_logs_no_reset_link(caplog, capsys):
    from django.core.mail import EmailMessage

    from classifier.mail import UnsentMailBackend

    link = "https://bills.example.com/accounts/reset/MQ/secret-token/"
    sent = UnsentMailBackend().send_messages([EmailMessage("Reset", link, to=["a@example.com"])])
    assert sent == 0
    assert "not sent" in caplog.text
    assert "secret-token" not in caplog.text
    assert "secret-token" not in capsys.readouterr().out
    out = _production(["-c", "from django.conf import settings as s; print(s.EMAIL_BACKEND)"])
    assert out.stdout.strip() == "classifier.mail.UnsentMailBackend", out.stderr


# Staff: what they may see comes from permissions, not from is_staff ---------------


def test_staff_without_permissions_see_no_one_elses_photos(
    client, user, make_user, make_prediction
):
    from django.contrib.auth.models import Permission

    prediction = make_prediction(user)
    staff = make_user("helper", is_staff=True)
    client.force_login(staff)
    for url in ("/predictions/{pk}/", "/predictions/{pk}/photo/", "/predictions/{pk}/thumbnail/"):
        assert client.get(url.format(pk=prediction.pk)).status_code == 404, url
    assert client.get("/admin/classifier/prediction/").status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_prediction"))
    staff = type(staff).objects.get(pk=staff.pk)  # the permission cache starts afresh
    client.force_login(staff)
    assert client.get(f"/predictions/{prediction.pk}/photo/").status_code == 200
