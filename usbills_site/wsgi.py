"""WSGI entry point for gunicorn and runserver.

The predictor is loaded here, once per process, after the application is
built: gunicorn (without --preload) imports this module in each worker after
forking, and runserver imports it too, but management commands never do, so
`migrate` and friends don't pay for the model.
"""

import os

from django.apps import apps
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usbills_site.settings")

application = get_wsgi_application()
apps.get_app_config("classifier").load_predictor()
