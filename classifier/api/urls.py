from django.urls import path

from . import views

app_name = "api"

urlpatterns = [
    path("predictions/", views.predictions, name="predictions"),
    path("predictions/<int:pk>/", views.prediction_detail, name="prediction"),
    path("predictions/<int:pk>/feedback/", views.prediction_feedback, name="feedback"),
    path("schema/", views.schema, name="schema"),
    path("docs/", views.docs, name="docs"),
]
