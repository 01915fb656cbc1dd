"""ASGI entry point. Loads the predictor once per process, as wsgi.py does."""

import os

from django.apps import apps
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usbills_site.settings")

application = get_asgi_application()
apps.get_app_config("classifier").load_predictor()
