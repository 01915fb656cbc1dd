from django import forms
from django.core.exceptions import ValidationError

from classifier import services
from classifier.forms import UploadForm
from classifier.ml import labels


class LiveSaveForm(UploadForm):
    """A frame from the live page and what the browser's model said about it."""

    device_label = forms.ChoiceField(choices=[(c, c) for c in labels.CLASSES])
    device_answer = forms.ChoiceField(choices=[(c, c) for c in (*labels.NOTES, labels.UNKNOWN)])
    device_confidence = forms.FloatField(min_value=0.0, max_value=1.0)
    device_model_version = forms.CharField(max_length=100)

    def save(self):
        """Store the frame as an upload with both answers, or None with the reason on the form."""
        data = self.cleaned_data
        device = services.DeviceAnswer(
            label=data["device_label"],
            answer=data["device_answer"],
            confidence=data["device_confidence"],
            model_version=data["device_model_version"],
        )
        try:
            return services.upload_create(
                user=self.user, file=data["image"], device=device, request_id=self.request_id
            )
        except ValidationError as exc:
            self.add_error("image", exc)
            return None
