from django.urls import path

from . import views

# Included by classifier/urls.py under "live/": names live in its namespace.
urlpatterns = [
    path("", views.page, name="live"),
    path("sw.js", views.service_worker, name="live_sw"),
    path("model/", views.model_active, name="live_model"),
    path("model/<str:version>/model.tflite", views.model_file, name="live_model_file"),
    path("model/<str:version>/card.json", views.model_card, name="live_model_card"),
    path("save/", views.save, name="live_save"),
    path("runtime/<str:name>", views.runtime_file, name="live_runtime"),
]
