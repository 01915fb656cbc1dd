from django.urls import path, re_path

from . import views

app_name = "api"

urlpatterns = [
    path("predictions/", views.predictions, name="predictions"),
    path("predictions/<int:pk>/", views.prediction_detail, name="prediction"),
    path("predictions/<int:pk>/feedback/", views.prediction_feedback, name="feedback"),
    path("predictions/<int:pk>/photo/", views.prediction_photo, name="photo"),
    path("schema/", views.schema, name="schema"),
    path("docs/", views.docs, name="docs"),
    # Anything else under /api/v1/ (e.g. /predictions/abc/) is a JSON 404, not a page.
    re_path(r"", views.not_found),
]
