from django.urls import include, path

from . import views

app_name = "classifier"

urlpatterns = [
    path("", views.upload, name="upload"),
    path("predictions/", views.prediction_list, name="predictions"),
    path("predictions/<int:pk>/", views.prediction_detail, name="prediction"),
    path("predictions/<int:pk>/feedback/", views.prediction_feedback, name="feedback"),
    path("predictions/<int:pk>/photo/", views.photo, name="photo"),
    path("predictions/<int:pk>/display/", views.display, name="display"),
    path("predictions/<int:pk>/thumbnail/", views.thumbnail, name="thumbnail"),
    path("predictions/<int:pk>/delete/", views.prediction_delete, name="prediction_delete"),
    path("live/", include("classifier.live.urls")),
    path("account/delete/", views.account_delete, name="account_delete"),
    path("account/api-keys/", views.tokens, name="tokens"),
    path("account/api-keys/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
]
