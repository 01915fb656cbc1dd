import io
import os
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from classifier import services
from classifier.ml import labels
from conftest import image_bytes, media_files, uploaded

pytestmark = pytest.mark.django_db


def _tree(root):
    return sorted(str(p.relative_to(root)).split("/")[0] for p in root.rglob("*") if p.is_file())


def test_export_training_data_writes_an_imagefolder_tree(
    user, staff_user, make_prediction, tmp_path
):
    fifty = make_prediction(user, label="usd_20")
    junk = make_prediction(user, label="usd_1")
    make_prediction(user)  # not reviewed: not exported
    services.prediction_review(prediction=fifty, reviewer=staff_user, label="usd_50")
    services.prediction_review(prediction=junk, reviewer=staff_user, label="not_a_bill")
    out = io.StringIO()

    call_command("export_training_data", str(tmp_path / "data"), stdout=out)

    assert _tree(tmp_path / "data") == ["not_a_bill", "usd_50"]
    (exported,) = (tmp_path / "data" / "usd_50").iterdir()
    assert exported.read_bytes() == fifty.upload.file.open("rb").read()
    text = out.getvalue()
    assert "usd_50            1" in text
    assert "not_a_bill        1" in text
    assert "2 photos in" in text
    assert "2 written, 0 already there" in text

    # A second run copies nothing again.
    out = io.StringIO()
    call_command("export_training_data", str(tmp_path / "data"), stdout=out)
    assert "0 written, 2 already there" in out.getvalue()


def test_the_same_photo_uploaded_twice_is_exported_once(
    user, other_user, staff_user, tmp_path, settings
):
    from conftest import image_bytes, uploaded

    data = image_bytes(color=(1, 2, 3))
    a = services.upload_create(user=user, file=uploaded(data))
    b = services.upload_create(user=other_user, file=uploaded(data))
    services.prediction_review(prediction=a, reviewer=staff_user, label="usd_5")
    services.prediction_review(prediction=b, reviewer=staff_user, label="usd_5")

    report = services.training_data_export(out=tmp_path)

    assert report["classes"]["usd_5"] == 1
    assert _tree(tmp_path) == ["usd_5"]


def test_a_relabelled_photo_moves_to_its_new_class(user, staff_user, make_prediction, tmp_path):
    p = make_prediction(user)
    services.prediction_review(prediction=p, reviewer=staff_user, label="usd_10")
    services.training_data_export(out=tmp_path)
    services.prediction_review(prediction=p, reviewer=staff_user, label=labels.NOT_A_BILL)

    report = services.training_data_export(out=tmp_path)

    assert _tree(tmp_path) == ["not_a_bill"]
    assert report["written"] == 1


def test_sweep_storage_deletes_only_old_files_no_upload_points_to(user, media_root):
    upload = services.upload_create(user=user, file=uploaded(image_bytes())).upload
    # What a worker killed after writing an upload's files, before its row, leaves.
    stray = [
        default_storage.save(f"{folder}/stray.jpg", ContentFile(b"x"))
        for folder in ("photos", "display", "thumbnails")
    ]
    # An upload still being saved: its file is there, its row not yet.
    young = default_storage.save("photos/young.jpg", ContentFile(b"y"))
    an_hour_ago = time.time() - 3700
    for name in [*stray, upload.file.name, upload.display.name, upload.thumbnail.name]:
        os.utime(media_root / name, (an_hour_ago, an_hour_ago))
    before = media_files(media_root)

    out = io.StringIO()
    call_command("sweep_storage", "--dry-run", stdout=out)
    assert media_files(media_root) == before
    assert "3 files with no upload found" in out.getvalue()

    out = io.StringIO()
    call_command("sweep_storage", stdout=out)
    left = {str(p.relative_to(media_root)) for p in media_files(media_root)}
    assert left == {upload.file.name, upload.display.name, upload.thumbnail.name, young}
    assert "3 files with no upload deleted" in out.getvalue()

    call_command("sweep_storage", "--older-than", "0", stdout=io.StringIO())
    left = {str(p.relative_to(media_root)) for p in media_files(media_root)}
    assert left == {upload.file.name, upload.display.name, upload.thumbnail.name}
