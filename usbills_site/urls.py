from django.contrib import admin
from django.urls import include, path

from classifier import views

# A database outage answers 503, not 500 (classifier.views.server_error).
handler500 = "classifier.views.server_error"

admin.site.site_header = "usbills administration"
admin.site.site_title = "usbills admin"

urlpatterns = [
    path("accounts/signup/", views.signup, name="signup"),
    # Before Django's own: throttled, with links to the pinned origin.
    path("accounts/password_reset/", views.password_reset, name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("classifier.api.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("", include("classifier.urls")),
]
