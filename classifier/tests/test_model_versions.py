"""Model versions: registration on first run, activation and rollback, workers following."""

import io
import shutil

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from classifier import selectors, services, serving
from classifier.models import ModelVersion
from conftest import image_bytes, uploaded

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, tiny_model_dir, tiny_model_2_dir):
    """A models directory with the tiny model (CURRENT) and a second version of it."""
    out = tmp_path_factory.mktemp("two-models")
    for f in [*tiny_model_dir.iterdir(), *tiny_model_2_dir.iterdir()]:
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture
def models_dir(settings, two_models):
    settings.CLASSIFIER_MODELS_DIR = two_models
    return two_models


def test_a_new_process_registers_the_models_and_activates_the_seed(models_dir, user, use_predictor):
    assert not ModelVersion.objects.exists()
    use_predictor(None)  # a process that has not loaded a model: the first upload starts it

    prediction = services.upload_create(user=user, file=uploaded(image_bytes()))

    versions = {v.version: v for v in ModelVersion.objects.all()}
    assert set(versions) == {"tiny-test", "tiny-2"}
    assert versions["tiny-test"].is_active
    assert versions["tiny-test"].activated_at is not None
    assert not versions["tiny-2"].is_active
    assert versions["tiny-2"].card["threshold"] == 0.4
    # Stored relative to the models directory, which containers mount in different places.
    assert versions["tiny-2"].file == "tiny-2.tflite"
    assert prediction.model == versions["tiny-test"]
    assert prediction.model_version == "tiny-test"


def test_a_request_with_no_active_version_registers_only_its_own_model(models_dir, user):
    # The process loaded its model while the database could not say which
    # (tiny-test, from the seed): the upload scans no directory.
    prediction = services.upload_create(user=user, file=uploaded(image_bytes()))

    assert [(v.version, v.is_active) for v in ModelVersion.objects.all()] == [("tiny-test", False)]
    assert prediction.model.version == "tiny-test"


def test_sync_keeps_the_active_version(models_dir):
    services.model_version_sync()
    tiny2 = selectors.model_version_get(version="tiny-2")
    services.model_version_activate(version=tiny2)

    assert services.model_version_sync() == tiny2
    assert ModelVersion.objects.filter(is_active=True).count() == 1


def test_registering_links_earlier_predictions(models_dir, user, make_prediction):
    old = make_prediction(user, model_version="tiny-2")

    services.model_version_sync()

    old.refresh_from_db()
    assert old.model.version == "tiny-2"


def test_activate_switches_workers_and_rolls_back(models_dir, user):
    first = services.upload_create(user=user, file=uploaded(image_bytes()))
    assert first.model_version == "tiny-test"
    out = io.StringIO()

    call_command("activate_model", "tiny-2", stdout=out)

    assert "tiny-2 is now active" in out.getvalue()
    # The same process, no restart: the next upload is answered by the new model.
    second = services.upload_create(user=user, file=uploaded(image_bytes()))
    assert second.model_version == "tiny-2"
    assert second.model.version == "tiny-2"
    assert second.threshold == 0.4
    assert serving.get_predictor().version == "tiny-2"

    call_command("activate_model", "tiny-test", stdout=io.StringIO())

    third = services.upload_create(user=user, file=uploaded(image_bytes()))
    assert third.model.version == "tiny-test"
    first.refresh_from_db()
    second.refresh_from_db()
    # What each model said stays with the model that said it.
    assert (first.model.version, second.model.version) == ("tiny-test", "tiny-2")
    active = ModelVersion.objects.get(is_active=True)
    assert active.version == "tiny-test"


def test_activate_refuses_an_unknown_or_broken_version(models_dir, tmp_path, settings):
    services.model_version_sync()
    with pytest.raises(CommandError, match="no model version"):
        call_command("activate_model", "nope")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    (tmp_path / "broken.json").write_text(
        '{"version": "broken", "classes": [], "threshold": 0.5, "input": {"size": 32}}'
    )
    services.model_version_register(model_path=broken)

    with pytest.raises(CommandError, match="cannot be served"):
        call_command("activate_model", "broken")

    assert selectors.model_version_active().version == "tiny-test"


def test_a_worker_keeps_serving_when_the_active_files_vanish(models_dir, user, tmp_path):
    services.model_version_sync()
    copy = tmp_path / "gone.tflite"
    shutil.copy(models_dir / "tiny-2.tflite", copy)
    (tmp_path / "gone.json").write_text(
        (models_dir / "tiny-2.json").read_text().replace('"tiny-2"', '"gone"')
    )
    gone = services.model_version_register(model_path=copy)
    services.model_version_activate(version=gone)
    copy.unlink()

    prediction = services.upload_create(user=user, file=uploaded(image_bytes()))

    assert prediction.model_version == "tiny-test"


def test_activate_model_lists_versions(models_dir):
    out = io.StringIO()
    call_command("activate_model", "--list", stdout=out)
    lines = out.getvalue().splitlines()
    assert any(line.startswith("* tiny-test") for line in lines)
    assert any(line.startswith("  tiny-2") for line in lines)


def test_the_admin_page_of_a_version_shows_how_it_has_done(
    models_dir, user, staff_user, client, make_prediction, monkeypatch
):
    services.model_version_sync()
    tiny = selectors.model_version_get(version="tiny-test")
    tiny.card = {**tiny.card, "validation": {"n": 40, "accuracy": 0.925, "by_source": {}}}
    tiny.save()
    right = make_prediction(user, label="usd_20", model_version="tiny-test", model=tiny)
    wrong = make_prediction(user, label="usd_5", model_version="tiny-test", model=tiny)
    make_prediction(user, label="usd_5", model_version="tiny-test", model=tiny, user_flagged=True)
    services.prediction_review(prediction=right, reviewer=staff_user, label="usd_20")
    services.prediction_review(prediction=wrong, reviewer=staff_user, label="usd_10")
    client.force_login(staff_user)
    measured = []
    performance = selectors.model_version_performance

    def counted(**kwargs):
        measured.append(kwargs["version"].pk)
        return performance(**kwargs)

    monkeypatch.setattr(selectors, "model_version_performance", counted)

    page = client.get(tiny.get_absolute_url()).content.decode()

    assert measured == [tiny.pk]  # once per page, for the figures and the chart
    assert "0.925" in page  # the card's held-out accuracy
    assert "3 predictions, 2 reviewed" in page
    assert "accuracy on reviewed photos: 50.0%" in page
    assert "a biased sample" in page
    assert "share flagged wrong by users: 33.3%" in page
    # In the notes' order, not as text ("$20" sorts before "$5").
    assert "$5: 2, $20: 1" in page
    assert "<details><summary>the whole card</summary>" in page
    # One day is said in words; a line needs two.
    assert "One day so far" in page
    assert '<svg role="img"' not in page
    # Nothing to edit, so nothing to save.
    assert 'name="_save"' not in page
    assert 'name="_continue"' not in page

    from datetime import timedelta

    from classifier.models import Prediction

    Prediction.objects.filter(pk=right.pk).update(created=right.created - timedelta(days=1))
    page = client.get(tiny.get_absolute_url()).content.decode()
    assert page.count("<polyline") == 2
    assert 'aria-label="accuracy on reviewed photos and share flagged, by day' in page
    # Every day with a value is a dot, even where no line reaches it.
    assert page.count('<circle cx="0.0"') == 2
    listing = client.get(reverse("admin:classifier_modelversion_changelist")).content.decode()
    assert "92.5%" in listing


def test_the_admin_serves_the_confusion_matrix(models_dir, staff_user, client, tmp_path):
    services.model_version_sync()
    tiny2 = selectors.model_version_get(version="tiny-2")
    url = reverse("admin:classifier_modelversion_confusion", args=[tiny2.pk])
    client.force_login(staff_user)
    assert client.get(url).status_code == 404
    png = models_dir / "tiny-2-confusion.png"
    png.write_bytes(image_bytes(fmt="PNG"))
    try:
        response = client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
    finally:
        png.unlink()


def test_the_admin_action_activates_one_version(models_dir, staff_user, client):
    services.model_version_sync()
    tiny2 = selectors.model_version_get(version="tiny-2")
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:classifier_modelversion_changelist"),
        {"action": "activate", "_selected_action": [tiny2.pk]},
        follow=True,
    )

    assert [str(m) for m in response.context["messages"]] == ["tiny-2 is now active."]
    assert selectors.model_version_active() == tiny2


def test_a_starting_worker_loads_the_active_version(models_dir, use_predictor):
    import importlib

    import usbills_site.wsgi

    services.model_version_sync()
    services.model_version_activate(version=selectors.model_version_get(version="tiny-2"))
    use_predictor(None)

    importlib.reload(usbills_site.wsgi)

    assert serving.current().version == "tiny-2"
