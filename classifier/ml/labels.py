"""The classes, in model-output order.

The names are the dataset's folder names and are used verbatim as labels in
the model card, the database, the admin and the API.
"""

CLASSES: tuple[str, ...] = (
    "usd_1",
    "usd_2",
    "usd_5",
    "usd_10",
    "usd_20",
    "usd_50",
    "usd_100",
    "not_a_bill",
)

NOT_A_BILL = "not_a_bill"

# What the predictor answers when it is unsure or sees no US note.
UNKNOWN = "unknown"

NOTES: tuple[str, ...] = tuple(c for c in CLASSES if c != NOT_A_BILL)

DISPLAY: dict[str, str] = {
    **{c: "$" + c.removeprefix("usd_") for c in NOTES},
    NOT_A_BILL: "Not a bill",
    UNKNOWN: "Can't identify this",
}


def display(label: str) -> str:
    """Human name of a label or answer ("usd_20" -> "$20")."""
    return DISPLAY.get(label, label)
