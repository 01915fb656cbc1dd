from django.urls import path

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
    path("account/api-keys/", views.tokens, name="tokens"),
    path("account/api-keys/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
]
