"""Deleting data: one photo, a whole account (by its owner or by an admin), and
API keys when the password changes. After each deletion no file of that user
is left in storage.

Real uploads through the form (the tiny model), the real database and storage.
"""

import pytest
from django.test import Client

from classifier import services
from classifier.models import ApiToken, Prediction, Upload
from conftest import image_bytes, media_files, uploaded

# Committed for real: the files go once the deletion is committed (on_commit).
pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-test-password"


def upload_photos(client, n):
    for i in range(n):
        response = client.post("/", {"image": uploaded(image_bytes(color=(i * 40, 90, 60)))})
        assert response.status_code == 302
    return list(Prediction.objects.order_by("pk"))


def files_of(uploads):
    """Every stored file of these uploads: the photo, its display copy and its thumbnail."""
    names = {name for u in uploads for name in (u.file.name, u.display.name, u.thumbnail.name)}
    # An upload without one of its three files would make the checks below vacuous.
    assert all(names)
    assert len(names) == 3 * len(uploads)
    return names


def stored(media_root):
    return {str(p.relative_to(media_root)) for p in media_files(media_root)}


def test_the_owner_deletes_one_photo(user_client, media_root):
    first, second = upload_photos(user_client, 2)
    gone = files_of([first.upload])
    response = user_client.post(f"/predictions/{first.pk}/delete/")
    assert response.status_code == 302
    assert not Prediction.objects.filter(pk=first.pk).exists()
    assert not Upload.objects.filter(pk=first.upload_id).exists()
    assert not gone & stored(media_root)
    assert files_of([second.upload]) <= stored(media_root)  # the other photo stays
    assert user_client.get(f"/predictions/{first.pk}/photo/").status_code == 404


def test_deleting_needs_a_post_and_the_owner(client, user, other_user, media_root):
    client.force_login(user)
    (prediction,) = upload_photos(client, 1)
    assert client.get(f"/predictions/{prediction.pk}/delete/").status_code == 405
    client.force_login(other_user)
    assert client.post(f"/predictions/{prediction.pk}/delete/").status_code == 404
    assert Prediction.objects.filter(pk=prediction.pk).exists()
    assert stored(media_root) == files_of([prediction.upload])


def test_the_api_deletes_a_photo_and_serves_photos_by_key(client, user, other_user, media_root):
    client.force_login(user)
    mine, theirs = upload_photos(client, 2)
    theirs.upload.owner = other_user
    theirs.upload.save()
    key = services.api_token_create(user=user, name="phone")[1]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = api.get(f"/api/v1/predictions/{mine.pk}/").json()
    photo = api.get(body["links"]["photo"])
    assert photo.status_code == 200
    assert photo["Content-Type"] == "image/jpeg"
    assert api.delete(f"/api/v1/predictions/{theirs.pk}/").status_code == 404
    assert api.delete(f"/api/v1/predictions/{mine.pk}/").status_code == 204
    assert api.get(f"/api/v1/predictions/{mine.pk}/").status_code == 404
    assert stored(media_root) == files_of([theirs.upload])


def test_a_user_deletes_their_account_with_their_password(client, user, other_user, media_root):
    client.force_login(other_user)
    upload_photos(client, 1)
    kept = stored(media_root)
    client.force_login(user)
    upload_photos(client, 3)
    gone = files_of(Upload.objects.filter(owner=user))
    assert gone <= stored(media_root)
    assert {name.split("/")[0] for name in gone} == {"photos", "display", "thumbnails"}
    key = services.api_token_create(user=user, name="phone")[1]

    page = client.get("/account/delete/")
    assert page.status_code == 200
    assert "operator's copy" in page.content.decode()
    wrong = client.post("/account/delete/", {"password": "not it"})
    assert wrong.status_code == 200
    assert "That is not your password." in wrong.content.decode()
    assert type(user).objects.filter(pk=user.pk).exists()

    response = client.post("/account/delete/", {"password": PASSWORD})
    assert response.status_code == 302
    login_page = client.get(response["Location"]).content.decode()
    assert "Your account, your photos and your API keys are deleted." in login_page
    assert "You are logged out." not in login_page
    assert not type(user).objects.filter(pk=user.pk).exists()
    assert not Upload.objects.filter(owner_id=user.pk).exists()
    assert not ApiToken.objects.filter(user_id=user.pk).exists()
    assert stored(media_root) == kept  # only the other user's files are left
    # Signed out, and the key is dead.
    assert client.get("/").status_code == 302
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v1/predictions/").status_code == 401


def test_an_admin_deletes_a_user_with_everything_of_theirs(client, user, staff_user, media_root):
    client.force_login(user)
    uploads = [p.upload for p in upload_photos(client, 2)]
    assert stored(media_root) == files_of(uploads)
    services.api_token_create(user=user, name="phone")
    client.force_login(staff_user)
    url = f"/admin/classifier/user/{user.pk}/delete/"
    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "Are you sure" in confirm.content.decode()
    response = client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not type(user).objects.filter(pk=user.pk).exists()
    assert Upload.objects.count() == 0
    assert ApiToken.objects.count() == 0
    assert stored(media_root) == set()


def test_predictions_still_cannot_be_deleted_one_by_one_in_the_admin(
    client, user, staff_user, make_prediction
):
    prediction = make_prediction(user)
    client.force_login(staff_user)
    url = f"/admin/classifier/prediction/{prediction.pk}/delete/"
    assert client.get(url).status_code == 403


def test_a_password_change_kills_the_api_keys(client, user):
    key = services.api_token_create(user=user, name="phone")[1]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v1/predictions/").status_code == 200
    client.force_login(user)
    new = "another-long-password-2"
    response = client.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    assert api.get("/api/v1/predictions/").status_code == 401
    # A key made after the change works.
    fresh = services.api_token_create(user=user, name="new phone")[1]
    assert (
        Client(HTTP_AUTHORIZATION=f"Bearer {fresh}").get("/api/v1/predictions/").status_code == 200
    )
