from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError

from . import services
from .ml import labels
from .models import User


class SignupForm(UserCreationForm):
    """Django's sign-up form (username, password1, password2) plus an optional email."""

    email = forms.EmailField(
        required=False, help_text="Optional. Needed only to reset a forgotten password."
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class UploadForm(forms.Form):
    """One photo. The file is judged by its content in services.upload_create."""

    image = forms.FileField(
        label="Photo of a banknote",
        error_messages={
            "required": "Choose a photo first.",
            "empty": "The file is empty.",
        },
        widget=forms.FileInput(attrs={"accept": "image/*"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_image(self):
        # A cheap early refusal; upload_create checks the size again, and the content.
        image = self.cleaned_data["image"]
        cap = settings.CLASSIFIER_MAX_UPLOAD_BYTES
        if image.size > cap:
            raise ValidationError(services.too_large_message(cap), code="too_large")
        return image

    def save(self):
        """Create the upload and its prediction, or None with the reason on the form."""
        try:
            return services.upload_create(user=self.user, file=self.cleaned_data["image"])
        except ValidationError as exc:
            self.add_error("image", exc)
            return None


class FeedbackForm(forms.Form):
    """The class the user says the photo shows."""

    label = forms.ChoiceField(choices=[(c, labels.display(c)) for c in labels.CLASSES])


class HistoryFilterForm(forms.Form):
    answer = forms.ChoiceField(
        required=False,
        label="Answer",
        choices=[
            ("", "Any answer"),
            *((c, labels.display(c)) for c in labels.NOTES),
            (labels.UNKNOWN, "Can't identify"),
        ],
    )
    flagged = forms.BooleanField(required=False, label="Only ones I flagged as wrong")
