import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from classifier import checks, serving

REPO = Path(__file__).resolve().parents[2]


def _errors(settings, path):
    settings.CLASSIFIER_MODELS_DIR = path
    return checks.check_model()


def test_a_good_model_passes(settings, tiny_model_dir):
    assert _errors(settings, tiny_model_dir) == []


def test_a_missing_models_dir_is_an_error_naming_current(settings, tmp_path):
    (tmp_path / "models").mkdir()
    [error] = _errors(settings, tmp_path / "models")
    assert error.id == "classifier.E001"
    assert str(tmp_path / "models" / "CURRENT") in error.msg


def test_a_missing_tflite_file_is_named(settings, tmp_path, tiny_model_dir):
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models)
    (models / "tiny-test.tflite").unlink()
    [error] = _errors(settings, models)
    assert error.id == "classifier.E001"
    assert "tiny-test.tflite" in error.msg


def test_a_missing_card_is_named(settings, tmp_path, tiny_model_dir):
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models)
    (models / "tiny-test.json").unlink()
    [error] = _errors(settings, models)
    assert "tiny-test.json" in error.msg


def test_an_unreadable_card_is_named(settings, tmp_path, tiny_model_dir):
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models)
    (models / "tiny-test.json").write_text("{not json")
    [error] = _errors(settings, models)
    assert error.id == "classifier.E002"
    assert "tiny-test.json" in error.msg


def test_a_card_without_its_fields_is_an_error(settings, tmp_path, tiny_model_dir):
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models)
    (models / "tiny-test.json").write_text('{"version": "tiny-test"}')
    [error] = _errors(settings, models)
    assert error.id == "classifier.E003"
    assert "classes" in error.msg


def test_manage_py_check_fails_with_a_clear_message(settings, tmp_path):
    settings.CLASSIFIER_MODELS_DIR = tmp_path / "nowhere"
    with pytest.raises(SystemCheckError, match=r"classifier\.E001.*nowhere"):
        call_command("check")


def test_the_development_secret_key_fails_the_deploy_check(settings):
    settings.SECRET_KEY = settings.DEV_SECRET_KEY
    [error] = checks.check_secret_key()
    assert error.id == "classifier.E010"
    settings.SECRET_KEY = "x" * 60
    assert checks.check_secret_key() == []


def test_the_wsgi_entry_point_loads_the_predictor_once(db, settings, tiny_model_dir, use_predictor):
    import importlib

    import usbills_site.wsgi

    settings.CLASSIFIER_MODELS_DIR = tiny_model_dir
    use_predictor(None)

    importlib.reload(usbills_site.wsgi)

    loaded = serving.current()
    assert loaded is not None
    assert loaded.version == "tiny-test"
    assert serving.get_predictor() is loaded


def _manage(*args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": "sqlite:///:memory:", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_management_commands_do_not_load_the_model(tiny_model_dir):
    # A command runs the checks (which read the card) but never builds an interpreter.
    code = (
        "from django.core.management import call_command; from classifier import serving;"
        "call_command('check');"
        "print('loaded' if serving.current() else 'not loaded')"
    )
    result = _manage("shell", "-c", code, CLASSIFIER_MODELS_DIR=str(tiny_model_dir))
    assert result.returncode == 0, result.stderr
    assert "not loaded" in result.stdout


# check --deploy with production settings passes: test_security.py.


def test_check_deploy_fails_without_a_secret_key(tiny_model_dir):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=REPO,
        env={**env, "CLASSIFIER_MODELS_DIR": str(tiny_model_dir), "DJANGO_DEBUG": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "classifier.E010" in result.stderr


@pytest.mark.parametrize(
    ("backend", "ok"),
    [
        ("classifier.cache.CountingDatabaseCache", True),
        ("classifier.cache.TolerantRedisCache", True),
        ("django.core.cache.backends.db.DatabaseCache", False),  # get, then set
        ("django.core.cache.backends.filebased.FileBasedCache", False),
        ("django.core.cache.backends.dummy.DummyCache", False),
    ],
)
def test_a_cache_that_cannot_count_stops_the_app(settings, backend, ok):
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": "x"}}
    errors = checks.check_cache_counts()
    assert (errors == []) is ok
    if not ok:
        assert errors[0].id == "classifier.E011"
