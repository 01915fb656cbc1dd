"""Receivers for Django's own signals."""

from django.contrib import messages
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver


@receiver(user_logged_out)
def say_logged_out(sender, request, user, **kwargs):
    # Sent before the session is emptied; the message is stored with the
    # response, in the new session, so the login page shows it.
    if request is not None:
        messages.info(request, "You are logged out.")
