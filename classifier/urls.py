from django.urls import include, path

from . import views
from .api import views as api_views

app_name = "classifier"

urlpatterns = [
    path("", views.upload, name="upload"),
    path("predictions/", views.prediction_list, name="predictions"),
    path("predictions/<int:pk>/", views.prediction_detail, name="prediction"),
    path("predictions/<int:pk>/feedback/", views.prediction_feedback, name="feedback"),
    path("predictions/<int:pk>/photo/", views.photo, name="photo"),
    path("predictions/<int:pk>/thumbnail/", views.thumbnail, name="thumbnail"),
    path("live/", include("classifier.live.urls")),
    path("account/api-keys/", api_views.tokens, name="tokens"),
    path("account/api-keys/<int:pk>/revoke/", api_views.token_revoke, name="token_revoke"),
]
