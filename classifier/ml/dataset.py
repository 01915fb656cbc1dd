"""The training data: an ImageFolder tree (one folder per class), its
sources and currencies, and the split used to validate.

File names start with their source (``bluebirdseven-0a1b....jpg``), and
several sources are near-identical stock photos of each other, so a random
split overstates accuracy. Users send notes of currencies no training set
holds, and a model that has seen part of a currency's photos refuses the
rest far more easily than a currency it has never seen. So the split holds
out WHOLE currencies (``HELD_OUT_CURRENCIES``) and whole sources of US notes
(``VALIDATION``), and the "can't identify" threshold is chosen on them.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .labels import CLASSES

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}

# Share of each source's files (per class) that goes to validation.
#   cemgalioglu (receipts): the whole source is held out, so rejection of
#     everyday paper is measured on a source never trained on.
#   imagenet: one photo per ImageNet class, so a 25% share is 200 object
#     classes the model has never seen.
#   bluebirdseven: the only source of $50 and $100 and the one most like
#     other people's photos (hands, fans, stacks); it cannot be held out
#     whole, so 40% of it, chosen by a hash of the file name.
#   christinelumen (foreign notes): 40%, for the same reason.
#   emerson5123 and d-jason32 (flat scans of single notes) train only.
#   corrections (photos users uploaded, labelled by reviewers): 30%, so
#     that a retrained model is compared on uploads it has never seen.
#   projpossibility (real camera photos of notes on a table, glare, upside
#     down) and ptbarros (scans of circulated notes): held out whole, the
#     nearest thing in the data to the photos users send.
#   Foreign notes: see HELD_OUT_CURRENCIES; every other currency trains.
CORRECTIONS = "corrections"
VALIDATION: dict[str, float] = {
    CORRECTIONS: 0.3,
    "cemgalioglu": 1.0,
    "imagenet": 0.25,
    "bluebirdseven": 0.4,
    "projpossibility": 1.0,
    "ptbarros": 1.0,
}

# Currencies held out whole: validation refuses notes of money it has never
# seen, as users' photos of CAD, JPY or SGD will be. Five sources, five
# countries, phone photos and web pictures, about 350 photos.
HELD_OUT_CURRENCIES: frozenset[str] = frozenset({"EGP", "TRY", "MAD", "BRL", "PHP"})

# Photos filed under the wrong note in the dataset, and the note they show:
# found by looking at the photos on which a model and the photo's nearest
# neighbours (pooled ImageNet features) most disagreed with the folder, and
# read off the note. Training and validation both use the note shown.
RELABEL: dict[str, str] = {
    "usd_1/bluebirdseven-726443b504bd.jpg": "usd_100",  # a large-portrait $100
    "usd_20/bluebirdseven-015ca0ed93c0.jpg": "usd_2",  # a red-seal $2
    "usd_2/emerson5123-5035c6477108.jpg": "usd_1",  # a $1
}

# The dataset's table of every image (file, class, source, currency, kind,
# licence), beside the class folders' parent.
INDEX_FILE = "index.csv"


@dataclass(frozen=True)
class Item:
    path: Path
    label: str
    origin: str = ""  # the source when it is not in the file name
    currency: str = ""  # ISO code of a foreign note (index.csv); "" for the rest

    @property
    def source(self) -> str:
        return self.origin or source_of(self.path.name)

    @property
    def group(self) -> str:
        """What validation reports this image under: its currency if foreign, else its source."""
        return self.currency or self.source


def source_of(filename: str) -> str:
    """The source prefix of a dataset file name ("bluebirdseven-0a1b.jpg" -> "bluebirdseven")."""
    stem = filename.rsplit(".", 1)[0]
    head, sep, tail = stem.rpartition("-")
    return head if sep else stem


def scan(root: str | Path, classes: tuple[str, ...] = CLASSES, *, source: str = "") -> list[Item]:
    """Every image under root/<class>/, sorted; folders that are not classes are an error.

    ``source`` names the source of every file (e.g. "corrections"); by
    default it is read from each file name. Files listed in ``RELABEL`` take
    the label given there.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    unknown = [p.name for p in folders if p.name not in classes]
    if unknown:
        raise ValueError(
            f"{root} has folders that are not classes: {unknown}; classes are {classes}"
        )
    currencies = read_currencies(root)
    items = [
        Item(
            path,
            RELABEL.get(f"{folder.name}/{path.name}", folder.name),
            source,
            currencies.get(f"{folder.name}/{path.name}", ""),
        )
        for folder in folders
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise ValueError(f"no images found under {root}")
    return items


def read_currencies(root: Path) -> dict[str, str]:
    """{"<class>/<file>": currency} of the foreign notes listed in the dataset's index.csv."""
    for index in (root / INDEX_FILE, root.parent / INDEX_FILE):
        if index.is_file():
            with index.open(newline="") as f:
                return {
                    "/".join(Path(row["file"]).parts[-2:]): row["currency"]
                    for row in csv.DictReader(f)
                    if row.get("currency") not in (None, "", "USD")
                }
    return {}


def _fraction(name: str) -> float:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(
    items: list[Item],
    validation: dict[str, float] | None = None,
    currencies: frozenset[str] | None = None,
) -> tuple[list[Item], list[Item]]:
    """(train, validation): whole held-out currencies, then by source, and within a
    source by a stable hash of the name."""
    validation = VALIDATION if validation is None else validation
    currencies = HELD_OUT_CURRENCIES if currencies is None else currencies
    train, val = [], []
    for item in items:
        share = 1.0 if item.currency in currencies else validation.get(item.source, 0.0)
        (val if _fraction(item.path.name) < share else train).append(item)
    return train, val


def counts(items: list[Item]) -> dict[str, dict[str, int]]:
    """{class: {source: images}} for the model card."""
    table: dict[str, Counter] = {c: Counter() for c in CLASSES}
    for item in items:
        table[item.label][item.source] += 1
    return {c: dict(sorted(t.items())) for c, t in table.items() if t}
