"""Settings read from the environment: a value they cannot read is an error, never a guess."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from usbills_site.settings import env_bool


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
