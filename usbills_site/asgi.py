"""ASGI entry point. Loads the predictor once per process, as wsgi.py does."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usbills_site.settings")

application = get_asgi_application()
from classifier import serving  # noqa: E402  (after the apps are ready)

serving.start()
