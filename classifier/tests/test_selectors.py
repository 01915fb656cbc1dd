from datetime import timedelta

import pytest
from django.utils import timezone

from classifier import selectors, services

pytestmark = pytest.mark.django_db


def _age(prediction, minutes):
    """Move an upload back in time, so ordering can be tested."""
    upload = prediction.upload
    upload.created = timezone.now() - timedelta(minutes=minutes)
    upload.save(update_fields=["created"])
    return prediction


def test_history_is_the_users_own_newest_first(user, other_user, make_prediction):
    old = _age(make_prediction(user), 30)
    new = _age(make_prediction(user), 1)
    middle = _age(make_prediction(user), 10)
    make_prediction(other_user)

    assert list(selectors.prediction_list_for_user(user=user)) == [new, middle, old]


def test_history_filters_by_answer(user, make_prediction):
    twenty = make_prediction(user, label="usd_20", confidence=0.9)
    make_prediction(user, label="usd_5", confidence=0.9)
    unknown = make_prediction(user, label="usd_5", confidence=0.2)

    assert list(selectors.prediction_list_for_user(user=user, answer="usd_20")) == [twenty]
    assert list(selectors.prediction_list_for_user(user=user, answer="unknown")) == [unknown]


def test_history_filters_what_the_user_flagged(user, make_prediction):
    flagged = make_prediction(user, label="usd_20")
    confirmed = make_prediction(user, label="usd_10")
    make_prediction(user)
    services.prediction_set_feedback(prediction=flagged, user=user, label="usd_50")
    services.prediction_set_feedback(prediction=confirmed, user=user, label="usd_10")

    assert list(selectors.prediction_list_for_user(user=user, flagged=True)) == [flagged]


def test_get_for_user_hides_other_peoples_predictions(user, other_user, make_prediction):
    mine = make_prediction(user)
    theirs = make_prediction(other_user)

    assert selectors.prediction_get_for_user(user=user, pk=mine.pk) == mine
    assert selectors.prediction_get_for_user(user=user, pk=theirs.pk) is None
    assert selectors.prediction_get_for_user(user=user, pk=10**9) is None


def test_staff_can_get_any_prediction(user, staff_user, make_prediction):
    theirs = make_prediction(user)
    assert selectors.prediction_get_for_user(user=staff_user, pk=theirs.pk) == theirs


def test_review_list_puts_flagged_then_least_sure_first_and_reviewed_last(
    user, staff_user, make_prediction
):
    sure = make_prediction(user, label="usd_1", confidence=0.99)
    unsure = make_prediction(user, label="usd_2", confidence=0.35)
    flagged = make_prediction(user, label="usd_100", confidence=0.98)
    reviewed = make_prediction(user, label="usd_5", confidence=0.10)
    services.prediction_set_feedback(prediction=flagged, user=user, label="usd_1")
    services.prediction_review(prediction=reviewed, reviewer=staff_user, label="usd_5")

    assert list(selectors.prediction_list_for_review()) == [flagged, unsure, sure, reviewed]


def test_labelled_list_has_only_reviewed_predictions(user, staff_user, make_prediction):
    make_prediction(user)
    reviewed = make_prediction(user)
    services.prediction_review(prediction=reviewed, reviewer=staff_user, label="usd_50")

    assert list(selectors.prediction_list_labelled()) == [reviewed]
