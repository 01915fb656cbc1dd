"""A request the proxy sends twice (its first replica died holding it) is saved once."""

import pytest
from django.urls import reverse

from classifier import services
from classifier.models import Prediction, Upload
from conftest import image_bytes, media_files, uploaded

pytestmark = pytest.mark.django_db

REQUEST_ID = "5f0c3a9d2b7e4c1f8a6d0e9b3c2a1f7e"  # nginx's $request_id: 32 hex digits


def test_the_same_request_twice_is_one_upload(user, media_root):
    first = services.upload_create(user=user, file=uploaded(image_bytes()), request_id=REQUEST_ID)
    again = services.upload_create(user=user, file=uploaded(image_bytes()), request_id=REQUEST_ID)

    assert again.pk == first.pk
    assert Upload.objects.count() == 1
    # Photo, thumbnail and display copy of the one upload: nothing stored twice.
    assert len(media_files(media_root)) == 3


def test_a_twin_saved_meanwhile_is_answered_and_the_copy_removed(user, media_root, monkeypatch):
    # The retry checked before the first replica committed, so both went on
    # to classify and store; the first to commit wins, the other answers with it.
    twin = services.upload_create(user=user, file=uploaded(image_bytes()), request_id=REQUEST_ID)
    looked = []

    def not_yet(owner, request_id):
        looked.append(request_id)
        return None if len(looked) == 1 else Prediction.objects.get(pk=twin.pk)

    monkeypatch.setattr(services, "_prediction_of_request", not_yet)

    again = services.upload_create(user=user, file=uploaded(image_bytes()), request_id=REQUEST_ID)

    assert again.pk == twin.pk
    assert looked == [REQUEST_ID, REQUEST_ID]
    assert Upload.objects.count() == 1
    assert len(media_files(media_root)) == 3


def test_without_an_id_every_upload_counts(user):
    services.upload_create(user=user, file=uploaded(image_bytes()))
    services.upload_create(user=user, file=uploaded(image_bytes()))
    assert Upload.objects.count() == 2


def test_an_id_only_finds_its_own_users_uploads(user, other_user):
    mine = services.upload_create(user=user, file=uploaded(image_bytes()), request_id=REQUEST_ID)
    theirs = services.upload_create(
        user=other_user, file=uploaded(image_bytes()), request_id=REQUEST_ID
    )
    assert theirs.pk != mine.pk
    assert theirs.upload.owner == other_user


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (REQUEST_ID, REQUEST_ID),
        ("short", ""),
        ("x" * 65, ""),
        ("has space in it", ""),
        ("../../etc/passwd", ""),
    ],
)
def test_request_id_of_takes_only_a_plain_token(rf, header, expected):
    assert services.request_id_of(rf.get("/", HTTP_X_REQUEST_ID=header)) == expected
    assert services.request_id_of(rf.get("/")) == ""


def test_the_page_answers_a_resent_request_with_the_first_upload(client, user):
    client.force_login(user)
    pages = [
        client.post(
            reverse("classifier:upload"),
            {"image": uploaded(image_bytes())},
            HTTP_X_REQUEST_ID=REQUEST_ID,
        )
        for _ in range(2)
    ]
    assert pages[0].status_code == 302
    assert pages[1]["Location"] == pages[0]["Location"]
    assert Upload.objects.count() == 1


def test_the_api_answers_a_resent_request_with_the_first_upload(client, user):
    key = services.api_token_create(user=user, name="phone")[1]
    answers = [
        client.post(
            "/api/v1/predictions/",
            {"image": uploaded(image_bytes())},
            HTTP_AUTHORIZATION=f"Bearer {key}",
            HTTP_X_REQUEST_ID=REQUEST_ID,
        )
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[1].json()["id"] == answers[0].json()["id"]
    assert Upload.objects.count() == 1
