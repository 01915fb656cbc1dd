import io

import pytest
from django.core.management import call_command

from classifier import services

pytestmark = pytest.mark.django_db


def test_export_reviewed_writes_an_imagefolder_tree(user, staff_user, make_prediction, tmp_path):
    fifty = make_prediction(user, label="usd_20")
    junk = make_prediction(user, label="usd_1")
    make_prediction(user)  # not reviewed: not exported
    services.prediction_review(prediction=fifty, reviewer=staff_user, label="usd_50")
    services.prediction_review(prediction=junk, reviewer=staff_user, label="not_a_bill")
    out = io.StringIO()

    call_command("export_reviewed", "--out", str(tmp_path / "data"), stdout=out)

    files = sorted(
        p.relative_to(tmp_path / "data").parts[0] for p in (tmp_path / "data").rglob("*.jpg")
    )
    assert files == ["not_a_bill", "usd_50"]
    exported = tmp_path / "data" / "usd_50" / fifty.upload.file.name.split("/")[-1]
    assert exported.read_bytes() == fifty.upload.file.open("rb").read()
    assert "wrote 2 photos" in out.getvalue()

    # A second run adds nothing.
    out = io.StringIO()
    call_command("export_reviewed", "--out", str(tmp_path / "data"), stdout=out)
    assert "wrote 0 photos" in out.getvalue()
