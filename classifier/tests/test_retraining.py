"""The whole loop on a small scale: uploads, reviews in the admin, export,
a short training run, a new inactive version, activation and rollback."""

import io
import shutil
import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from classifier import selectors, services
from classifier.models import ModelVersion, Prediction
from conftest import uploaded

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.tensorflow]

PER_CLASS_AND_SOURCE = 4


@pytest.fixture(scope="module")
def small_dataset(dataset_dir, tmp_path_factory):
    """A few photos of every class and source of the training data."""
    out = tmp_path_factory.mktemp("small-train")
    for folder in sorted(p for p in dataset_dir.iterdir() if p.is_dir()):
        taken: dict[str, int] = {}
        for photo in sorted(folder.iterdir()):
            source = photo.name.rsplit("-", 1)[0]
            if taken.get(source, 0) < PER_CLASS_AND_SOURCE:
                (out / folder.name).mkdir(exist_ok=True)
                shutil.copy(photo, out / folder.name / photo.name)
                taken[source] = taken.get(source, 0) + 1
    return out


def test_reviews_become_a_new_model_that_can_be_activated_and_rolled_back(
    small_dataset, dataset_dir, tiny_model_dir, settings, tmp_path, user, staff_user, client
):
    models_dir = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models_dir)
    settings.CLASSIFIER_MODELS_DIR = models_dir

    # Users upload real photos that were not in the small training set; the
    # tiny model's answers are wrong, and a reviewer relabels them in the admin.
    uploads = {
        "usd_20": sorted((dataset_dir / "usd_20").iterdir())[-6:],
        "not_a_bill": sorted((dataset_dir / "not_a_bill").iterdir())[-6:],
    }
    made = {
        label: [
            services.upload_create(user=user, file=uploaded(p.read_bytes(), name=p.name))
            for p in photos
        ]
        for label, photos in uploads.items()
    }
    assert {p.model.version for ps in made.values() for p in ps} == {"tiny-test"}
    client.force_login(staff_user)
    changelist = reverse("admin:classifier_prediction_changelist")
    for label, predictions in made.items():
        response = client.post(
            changelist,
            {"action": f"relabel_as_{label}", "_selected_action": [p.pk for p in predictions]},
        )
        assert response.status_code == 302
    assert selectors.prediction_list_labelled().count() == 12

    out = io.StringIO()
    started = time.perf_counter()
    call_command(
        "train_model",
        "--data",
        str(small_dataset),
        "--name",
        "candidate-1",
        "--variants",
        "1",
        "--head-epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--processes",
        "2",
        stdout=out,
    )
    seconds = time.perf_counter() - started
    text = out.getvalue()
    print(f"train_model on {small_dataset}: {seconds:.0f} s")

    candidate = ModelVersion.objects.get(version="candidate-1")
    assert not candidate.is_active
    assert selectors.model_version_active().version == "tiny-test"
    assert (models_dir / "CURRENT").read_text().strip() == "tiny-test"
    # Both models' figures on the same held-out photos, corrections among them.
    assert "corrections" in candidate.validation["by_source"]
    assert candidate.comparison["model_version"] == "tiny-test"
    assert candidate.comparison["n"] == candidate.validation["n"]
    assert "corrections: 12 reviewed photos" in text
    assert "accuracy on corrections" in text
    assert "activate_model candidate-1" in text

    call_command("activate_model", "candidate-1", stdout=io.StringIO())
    photo = sorted((dataset_dir / "usd_50").iterdir())[-1]
    after = services.upload_create(user=user, file=uploaded(photo.read_bytes()))
    assert after.model == candidate
    assert after.model_version == "candidate-1"

    call_command("activate_model", "tiny-test", stdout=io.StringIO())
    rolled_back = services.upload_create(user=user, file=uploaded(photo.read_bytes()))
    assert rolled_back.model.version == "tiny-test"
    assert Prediction.objects.filter(model=candidate).count() == 1
