import pytest

from classifier.templatetags.classifier_tags import bar_width, label_display, percent


@pytest.mark.parametrize(
    ("label", "shown"),
    [
        ("usd_20", "$20"),
        ("usd_100", "$100"),
        ("not_a_bill", "Not a bill"),
        ("unknown", "Can't identify this"),
    ],
)
def test_label_display(label, shown):
    assert label_display(label) == shown


def test_percent():
    assert percent(0.973) == "97%"
    assert percent(0.9734, 1) == "97.3%"
    assert percent(None) == ""


def test_bar_width_is_clamped():
    assert bar_width(0.5) == "50.0%"
    assert bar_width(1.7) == "100.0%"
    assert bar_width(-1) == "0.0%"
    assert bar_width("x") == "0%"


def test_code_spans_escapes_and_marks_code():
    from classifier.templatetags.classifier_tags import code_spans

    assert code_spans("Send `Authorization: Bearer <key>` & wait") == (
        "Send <code>Authorization: Bearer &lt;key&gt;</code> &amp; wait"
    )
    assert code_spans("one ` left") == "one ` left"
