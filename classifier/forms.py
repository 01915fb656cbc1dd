from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError

from . import services
from .ml import labels, preprocess
from .models import User


class SignupForm(UserCreationForm):
    """Django's sign-up form (username, password1, password2) plus an optional email."""

    email = forms.EmailField(
        required=False, help_text="Optional. Needed only to reset a forgotten password."
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's reset form; the link names settings.SITE_URL when it is set, never a
    host or port taken from the request's headers."""

    def save(self, *args, **kwargs):
        if settings.SITE_URL:
            origin = urlsplit(settings.SITE_URL)
            kwargs["domain_override"] = origin.netloc
            kwargs["use_https"] = origin.scheme == "https"
        return super().save(*args, **kwargs)


class AccountDeleteForm(forms.Form):
    """The password again, so that a borrowed, signed-in phone cannot delete the account."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise ValidationError("That is not your password.", code="wrong_password")
        return password


# iPhones save HEIC by default, which the image library cannot read: say so
# plainly rather than "not an image".
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif")
HEIF_MESSAGE = (
    f"HEIC/HEIF photos are not supported. Please upload a {preprocess.FORMAT_NAMES} "
    "(on an iPhone: Settings, Camera, Formats, Most Compatible)."
)


def is_heif(head: bytes) -> bool:
    """True when the bytes start like a HEIF/HEIC/AVIF file (an ISO 'ftyp' box)."""
    return head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


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

    def __init__(self, *args, user, request_id: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        # The proxy's id of the request (services.request_id_of).
        self.request_id = request_id

    def clean_image(self):
        # Cheap early refusals; upload_create checks the size again, and the content.
        getlist = getattr(self.files, "getlist", None)  # a plain dict holds one file
        if getlist is not None and len(getlist("image")) > 1:
            # The field takes one file; answering for one of many would be a guess.
            raise ValidationError("Upload one photo at a time.", code="too_many_files")
        image = self.cleaned_data["image"]
        cap = settings.CLASSIFIER_MAX_UPLOAD_BYTES
        if image.size > cap:
            raise ValidationError(services.too_large_message(cap), code="too_large")
        image.seek(0)
        head = image.read(32)
        image.seek(0)
        if is_heif(head):
            raise ValidationError(HEIF_MESSAGE, code="unsupported_format")
        return image

    def save(self):
        """Create the upload and its prediction, or None with the reason on the form."""
        try:
            return services.upload_create(
                user=self.user, file=self.cleaned_data["image"], request_id=self.request_id
            )
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
