"""Settings read from the environment: a value they cannot read is an error, never a guess."""

import json
import os

import dj_database_url
import pytest
from django.core.exceptions import ImproperlyConfigured

from conftest import settings_in_a_new_process
from usbills_site.settings import env_bool, env_database_url, env_secret, secret_file


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), (" Yes ", True), ("ON", True), ("0", False), ("off", False)],
)
def test_env_bool_reads_the_usual_words(monkeypatch, value, expected):
    monkeypatch.setenv("USBILLS_TEST_FLAG", value)
    assert env_bool("USBILLS_TEST_FLAG", not expected) is expected


@pytest.mark.parametrize("value", [None, "", "  "])
def test_env_bool_unset_or_empty_is_the_default(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("USBILLS_TEST_FLAG", raising=False)
    else:
        monkeypatch.setenv("USBILLS_TEST_FLAG", value)
    assert env_bool("USBILLS_TEST_FLAG", True) is True
    assert env_bool("USBILLS_TEST_FLAG", False) is False


def test_env_bool_refuses_a_typo_naming_the_variable(monkeypatch):
    monkeypatch.setenv("DJANGO_SECURE_COOKIES", "ture")
    with pytest.raises(ImproperlyConfigured, match=r"DJANGO_SECURE_COOKIES='ture'"):
        env_bool("DJANGO_SECURE_COOKIES", True)


# Secrets from files (Docker and Kubernetes secrets), not the environment.


@pytest.fixture
def secret(tmp_path):
    def write(text: str, name: str = "secret") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def test_env_secret_reads_the_file_without_its_final_newline(monkeypatch, secret):
    monkeypatch.delenv("USBILLS_TEST_KEY", raising=False)
    monkeypatch.setenv("USBILLS_TEST_KEY_FILE", secret("s3cret with spaces \n"))
    assert env_secret("USBILLS_TEST_KEY") == "s3cret with spaces "


def test_env_secret_falls_back_to_the_variable_then_the_default(monkeypatch):
    monkeypatch.delenv("USBILLS_TEST_KEY_FILE", raising=False)
    monkeypatch.setenv("USBILLS_TEST_KEY", "from-env")
    assert env_secret("USBILLS_TEST_KEY", "default") == "from-env"
    monkeypatch.delenv("USBILLS_TEST_KEY")
    assert env_secret("USBILLS_TEST_KEY", "default") == "default"


def test_env_secret_refuses_both_sources(monkeypatch, secret):
    monkeypatch.setenv("USBILLS_TEST_KEY", "from-env")
    monkeypatch.setenv("USBILLS_TEST_KEY_FILE", secret("from-file"))
    with pytest.raises(ImproperlyConfigured, match="USBILLS_TEST_KEY or USBILLS_TEST_KEY_FILE"):
        env_secret("USBILLS_TEST_KEY")


@pytest.mark.parametrize("text", ["", "\n"])
def test_an_empty_secret_file_is_an_error_not_an_empty_secret(monkeypatch, secret, text):
    monkeypatch.setenv("USBILLS_TEST_KEY_FILE", secret(text))
    with pytest.raises(ImproperlyConfigured, match="is empty"):
        env_secret("USBILLS_TEST_KEY")


def test_a_missing_secret_file_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("USBILLS_TEST_KEY_FILE", str(tmp_path / "nowhere"))
    with pytest.raises(ImproperlyConfigured, match=r"USBILLS_TEST_KEY_FILE=.*nowhere"):
        secret_file("USBILLS_TEST_KEY_FILE")


def test_database_password_file_goes_into_the_url_quoted(monkeypatch, secret):
    password = "p@ss:w/rd?#%"  # every character a URL gives a meaning to  # noqa: S105
    monkeypatch.setenv("DATABASE_URL", "postgres://usbills@db:5432/usbills")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", secret(password + "\n"))
    config = dj_database_url.parse(env_database_url("sqlite:///unused"))
    assert (config["USER"], config["PASSWORD"]) == ("usbills", password)
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db", 5432, "usbills")


def test_without_a_password_file_the_url_is_used_as_it_is(monkeypatch):
    monkeypatch.delenv("DATABASE_PASSWORD_FILE", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgres://u:inline@db/x")
    assert env_database_url("sqlite:///unused") == "postgres://u:inline@db/x"
    monkeypatch.delenv("DATABASE_URL")
    assert env_database_url("sqlite:///default") == "sqlite:///default"


def test_a_password_in_the_url_and_a_password_file_is_an_error(monkeypatch, secret):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:inline@db/x")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", secret("other"))
    with pytest.raises(ImproperlyConfigured, match="DATABASE_PASSWORD_FILE"):
        env_database_url("sqlite:///unused")


def test_settings_take_every_secret_from_files(secret):
    """The settings module itself, loaded in a fresh process as a container would load it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "CLASSIFIER_MODEL"))
    }
    env.update(
        DJANGO_SECRET_KEY_FILE=secret("key-from-a-file\n", "key"),
        DATABASE_URL="postgres://usbills@db:5432/usbills",
        DATABASE_PASSWORD_FILE=secret("db password\n", "db"),
        DJANGO_S3_BUCKET="photos",
        DJANGO_S3_ACCESS_KEY_ID="usbills",
        DJANGO_S3_SECRET_ACCESS_KEY_FILE=secret("s3-secret\n", "s3"),
        DJANGO_EMAIL_HOST_PASSWORD_FILE=secret("mail-secret\n", "mail"),
    )
    code = (
        "import json; from django.conf import settings as s; print(json.dumps(["
        "s.SECRET_KEY, s.DATABASES['default']['PASSWORD'],"
        " s.STORAGES['default']['OPTIONS']['secret_key'],"
        " s.STORAGES['models']['OPTIONS']['secret_key'], s.EMAIL_HOST_PASSWORD]))"
    )
    assert json.loads(settings_in_a_new_process(env, code)) == [
        "key-from-a-file",
        "db password",
        "s3-secret",
        "s3-secret",
        "mail-secret",
    ]
