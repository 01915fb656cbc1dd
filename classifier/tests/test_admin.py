import re

import pytest

from classifier import services
from classifier.models import Prediction

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/classifier/prediction/"


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def _listed(response) -> list[int]:
    """Prediction ids in the order the changelist shows them."""
    html = response.content.decode()
    return [int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html)]


def test_changelist_needs_staff(client, user):
    client.force_login(user)
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_changelist_shows_thumbnail_user_answer_and_state(admin_client, user, make_prediction):
    prediction = make_prediction(user, label="usd_20", confidence=0.876, model_version="v7")
    services.prediction_set_feedback(prediction=prediction, user=user, label="usd_50")

    response = admin_client.get(CHANGELIST)

    html = response.content.decode()
    assert response.status_code == 200
    assert f'src="/predictions/{prediction.pk}/thumbnail/"' in html
    assert "alice" in html
    assert "$20" in html
    assert "87.6%" in html
    assert "Wrong: $50" in html
    assert "v7" in html


def test_default_order_puts_what_needs_review_first(
    admin_client, user, staff_user, make_prediction
):
    sure = make_prediction(user, label="usd_1", confidence=0.99)
    unsure = make_prediction(user, label="usd_2", confidence=0.4)
    flagged = make_prediction(user, label="usd_10", confidence=0.97)
    reviewed = make_prediction(user, label="usd_5", confidence=0.2)
    services.prediction_set_feedback(prediction=flagged, user=user, label="usd_20")
    services.prediction_review(prediction=reviewed, reviewer=staff_user, label="usd_5")

    assert _listed(admin_client.get(CHANGELIST)) == [
        flagged.pk,
        unsure.pk,
        sure.pk,
        reviewed.pk,
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("answer__exact=usd_20", {"twenty"}),
        ("answer__exact=unknown", {"unsure"}),
        ("confidence=lt50", {"unsure"}),
        ("confidence=ge95", {"twenty"}),
        ("confidence=80-95", {"ten"}),
        ("user_flagged__exact=1", {"ten"}),
        ("user_flagged__exact=0", {"twenty", "unsure"}),
        ("reviewed=yes", {"twenty"}),
        ("reviewed=no", {"ten", "unsure"}),
        ("model_version=v2", {"unsure"}),
        ("q=bob", {"unsure"}),
    ],
)
def test_filters_and_search(
    admin_client, user, other_user, staff_user, make_prediction, query, expected
):
    made = {
        "twenty": make_prediction(user, label="usd_20", confidence=0.99),
        "ten": make_prediction(user, label="usd_10", confidence=0.85),
        "unsure": make_prediction(other_user, label="usd_5", confidence=0.3, model_version="v2"),
    }
    services.prediction_set_feedback(prediction=made["ten"], user=user, label="usd_1")
    services.prediction_review(prediction=made["twenty"], reviewer=staff_user, label="usd_20")

    response = admin_client.get(f"{CHANGELIST}?{query}")

    assert response.status_code == 200
    assert set(_listed(response)) == {made[name].pk for name in expected}


def test_detail_shows_the_photo_and_every_probability(admin_client, user, make_prediction):
    prediction = make_prediction(user, label="usd_100", confidence=0.9)

    html = admin_client.get(f"{CHANGELIST}{prediction.pk}/change/").content.decode()

    assert f'src="/predictions/{prediction.pk}/display/"' in html
    assert f'href="/predictions/{prediction.pk}/photo/"' in html
    for name in ("$1", "$2", "$5", "$10", "$20", "$50", "$100", "Not a bill"):
        assert f"<th scope='row'>{name}</th>" in html
    assert "90.00%" in html


def test_saving_a_reviewed_label_records_who_and_when(
    admin_client, user, staff_user, make_prediction
):
    prediction = make_prediction(user, label="usd_100", confidence=0.9)

    response = admin_client.post(
        f"{CHANGELIST}{prediction.pk}/change/", {"reviewed_label": "usd_50"}
    )

    assert response.status_code == 302
    prediction.refresh_from_db()
    assert prediction.reviewed_label == "usd_50"
    assert prediction.reviewed_by == staff_user
    assert prediction.reviewed_at is not None
    assert (prediction.label, prediction.answer, prediction.confidence) == (
        "usd_100",
        "usd_100",
        0.9,
    )


def test_the_admin_cannot_add_or_delete_predictions(admin_client, user, make_prediction):
    prediction = make_prediction(user)
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.get(f"{CHANGELIST}{prediction.pk}/delete/").status_code == 403


def test_action_confirm_the_models_answer(admin_client, user, staff_user, make_prediction):
    note = make_prediction(user, label="usd_10", confidence=0.9)
    unsure = make_prediction(user, label="usd_5", confidence=0.3)

    response = admin_client.post(
        CHANGELIST,
        {"action": "confirm_answer", "_selected_action": [note.pk, unsure.pk]},
        follow=True,
    )

    assert "Confirmed 1." in response.content.decode()
    assert "Skipped 1" in response.content.decode()
    note.refresh_from_db()
    unsure.refresh_from_db()
    assert (note.reviewed_label, note.reviewed_by) == ("usd_10", staff_user)
    assert unsure.reviewed_label == ""


@pytest.mark.parametrize("label", ["usd_50", "not_a_bill"])
def test_action_relabel(admin_client, user, staff_user, make_prediction, label):
    a = make_prediction(user, label="usd_20", confidence=0.9)
    b = make_prediction(user, label="usd_1", confidence=0.5)

    admin_client.post(
        CHANGELIST, {"action": f"relabel_as_{label}", "_selected_action": [a.pk, b.pk]}
    )

    for prediction in Prediction.objects.all():
        assert prediction.reviewed_label == label
        assert prediction.reviewed_by == staff_user
        assert prediction.reviewed_at is not None
    a.refresh_from_db()
    assert (a.label, a.answer) == ("usd_20", "usd_20")


def test_relabel_actions_exist_for_every_class(admin_client, user, make_prediction):
    make_prediction(user)
    html = admin_client.get(CHANGELIST).content.decode()
    assert "Confirm the model&#x27;s answer</option>" in html
    for name in ("$1", "$2", "$5", "$10", "$20", "$50", "$100", "Not a bill"):
        assert f"Relabel as {name}</option>" in html


# Review history, bulk actions on reviewed rows, the review screen ----------------


def _history(admin_client, prediction) -> str:
    return admin_client.get(f"{CHANGELIST}{prediction.pk}/history/").content.decode()


def test_a_bulk_relabel_is_on_each_photos_history(admin_client, user, make_prediction):
    first = make_prediction(user, label="usd_5", confidence=0.4)
    second = make_prediction(user, label="usd_10", confidence=0.5)

    admin_client.post(
        CHANGELIST,
        {"action": "relabel_as_usd_50", "_selected_action": [first.pk, second.pk]},
    )

    for prediction in (first, second):
        prediction.refresh_from_db()
        assert prediction.reviewed_label == "usd_50"
        assert "Reviewed label: none → $50 (bulk action)" in _history(admin_client, prediction)


def test_an_edit_on_the_page_is_logged_once(admin_client, user, make_prediction):
    prediction = make_prediction(user, label="usd_5", confidence=0.4)
    page = admin_client.get(f"{CHANGELIST}{prediction.pk}/change/")
    assert page.status_code == 200
    admin_client.post(f"{CHANGELIST}{prediction.pk}/change/", {"reviewed_label": "usd_1"})
    html = _history(admin_client, prediction)
    assert html.count("Reviewed label: none → $1 (edited on its page)") == 1
    assert html.count('<th scope="row">') == 1


def test_bulk_actions_ask_before_changing_reviewed_photos(
    admin_client, user, staff_user, make_prediction
):
    fresh = make_prediction(user, label="usd_5", confidence=0.4)
    done = make_prediction(user, label="usd_10", confidence=0.5)
    services.prediction_review(prediction=done, reviewer=staff_user, label="usd_10")
    chosen = {"action": "relabel_as_usd_20", "_selected_action": [fresh.pk, done.pk]}

    asked = admin_client.post(CHANGELIST, chosen)

    html = asked.content.decode()
    assert asked.status_code == 200
    assert "1 of them was reviewed already" in html
    assert f"#{done.pk}</a>: reviewed as $10" in html
    fresh.refresh_from_db()
    assert fresh.reviewed_label == ""  # nothing changed yet

    admin_client.post(CHANGELIST, {**chosen, "reviewed": "skip"})
    fresh.refresh_from_db()
    done.refresh_from_db()
    assert (fresh.reviewed_label, done.reviewed_label) == ("usd_20", "usd_10")

    admin_client.post(CHANGELIST, {**chosen, "reviewed": "change"})
    done.refresh_from_db()
    assert done.reviewed_label == "usd_20"
    assert "Reviewed label: $10 → $20 (bulk action)" in _history(admin_client, done)


def test_accept_the_users_label_in_bulk(admin_client, user, make_prediction):
    said = make_prediction(user, label="usd_5", confidence=0.9)
    services.prediction_set_feedback(prediction=said, user=user, label="usd_50")
    silent = make_prediction(user, label="usd_5", confidence=0.3)

    response = admin_client.post(
        CHANGELIST,
        {"action": "accept_user_label", "_selected_action": [said.pk, silent.pk]},
        follow=True,
    )

    said.refresh_from_db()
    silent.refresh_from_db()
    assert (said.reviewed_label, silent.reviewed_label) == ("usd_50", "")
    assert "Skipped 1: their owners gave no label." in response.content.decode()


def test_the_review_queue_on_the_admin_index_and_the_review_screen(
    admin_client, user, make_prediction
):
    sure = make_prediction(user, label="usd_20", confidence=0.97)  # not in the queue
    unsure = make_prediction(user, label="usd_50", confidence=0.7)
    flagged = make_prediction(user, label="usd_10", confidence=0.95)
    services.prediction_set_feedback(prediction=flagged, user=user, label="usd_100")

    index = admin_client.get("/admin/").content.decode()
    assert "2 photos waiting for review" in index

    # Flagged first; the screen shows the photo, the model's top 3 and the user's label.
    first = admin_client.get("/admin/classifier/prediction/review/")
    assert first["Location"] == f"/admin/classifier/prediction/review/{flagged.pk}/"
    html = admin_client.get(first["Location"]).content.decode()
    assert f'src="/predictions/{flagged.pk}/display/"' in html
    assert html.count("<li><span>") == 3
    assert "Said: <strong>$100</strong>" in html
    assert "<kbd>7</kbd> $100" in html
    assert "<kbd>a</kbd> Accept the user" in html

    # One answer, and straight on to the next.
    after = admin_client.post(first["Location"], {"choice": "user"})
    assert after["Location"] == "/admin/classifier/prediction/review/"
    assert admin_client.get(after["Location"])["Location"].endswith(f"/{unsure.pk}/")
    flagged.refresh_from_db()
    assert flagged.reviewed_label == "usd_100"
    assert "(review screen)" in _history(admin_client, flagged)

    # Skipping moves past a photo without reviewing it.
    admin_client.post(f"/admin/classifier/prediction/review/{unsure.pk}/", {"choice": "skip"})
    unsure.refresh_from_db()
    assert unsure.reviewed_label == ""
    done = admin_client.get("/admin/classifier/prediction/review/").content.decode()
    assert "The review queue is empty" in done
    assert "You skipped 1 photo" in done
    again = admin_client.get("/admin/classifier/prediction/review/?restart=1")
    assert again["Location"].endswith(f"/{unsure.pk}/")
    assert sure.pk not in (flagged.pk, unsure.pk)


def test_a_reviewer_without_superuser_rights_can_review(client, make_user, user, make_prediction):
    from django.core.management import call_command

    reviewer = make_user("rita")
    call_command("make_reviewers", "rita")
    reviewer.refresh_from_db()
    assert reviewer.is_staff
    assert not reviewer.is_superuser
    prediction = make_prediction(user, label="usd_50", confidence=0.7)
    client.force_login(reviewer)

    assert "1 photo waiting for review" in client.get("/admin/").content.decode()
    assert client.get(CHANGELIST).status_code == 200
    client.post(f"/admin/classifier/prediction/review/{prediction.pk}/", {"choice": "usd_5"})
    prediction.refresh_from_db()
    assert prediction.reviewed_label == "usd_5"
    # Reviewing is all: no users, no keys, no activating models.
    assert client.get("/admin/classifier/user/").status_code == 403
    assert client.get("/admin/classifier/apitoken/").status_code == 403
    versions = client.get("/admin/classifier/modelversion/").content.decode()
    assert "Activate" not in versions


def test_a_user_outside_the_group_cannot_review(client, make_user, user, make_prediction):
    staff = make_user("stan", is_staff=True)
    prediction = make_prediction(user, label="usd_50", confidence=0.7)
    client.force_login(staff)
    response = client.post(
        f"/admin/classifier/prediction/review/{prediction.pk}/", {"choice": "usd_5"}
    )
    assert response.status_code == 403
    prediction.refresh_from_db()
    assert prediction.reviewed_label == ""


def test_the_list_links_to_the_review_queue_with_its_count(admin_client, user, make_prediction):
    make_prediction(user, label="usd_50", confidence=0.7)
    html = admin_client.get(CHANGELIST).content.decode()
    assert "Review queue (1)</a>" in html
