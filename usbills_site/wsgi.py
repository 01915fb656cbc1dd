"""WSGI entry point for gunicorn and runserver.

The predictor is loaded here (classifier.serving.start), once per process,
after the application is built: gunicorn (without --preload) imports this
module in each worker after forking, and runserver imports it too, but
management commands never do, so `migrate` and friends don't pay for the model.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usbills_site.settings")

application = get_wsgi_application()
from classifier import serving  # noqa: E402  (after the apps are ready)

serving.start()
