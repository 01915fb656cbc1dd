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

    assert f'src="/predictions/{prediction.pk}/photo/"' in html
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
    for name in ("$1", "$2", "$5", "$10", "$20", "$50", "$100", "not a bill"):
        assert f"Relabel as {name}</option>" in html
