"""The app's own error for failures that are not the user's fault, and their one answer.

Services raise Django's ValidationError for bad input (a 400 or the form
again), PermissionDenied for someone else's data (403), and
ServiceUnavailable when the model or the storage fails: the page and the API
both answer it with `status` (503) and `message`; the API adds `code`.
"""


class ServiceUnavailable(Exception):
    """The model or the storage failed; nothing was saved. Try again later."""

    status = 503

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def model_unavailable() -> ServiceUnavailable:
    """The model cannot be loaded (missing or broken files)."""
    return ServiceUnavailable(
        "model_unavailable", "The classifier is not available right now. Please try later."
    )


def storage_unavailable() -> ServiceUnavailable:
    """The media directory is full or not writable."""
    return ServiceUnavailable(
        "storage_unavailable", "Your photo could not be stored right now. Please try later."
    )
