import pytest

from classifier.ml import dataset


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("bluebirdseven-0a1b2c3d4e5f.jpg", "bluebirdseven"),
        ("d-jason32-abcdef012345.jpg", "d-jason32"),
        ("imagenet-n01440764.jpg", "imagenet"),
        ("photo.jpg", "photo"),
    ],
)
def test_source_of(name, source):
    assert dataset.source_of(name) == source


def _tree(root, files):
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root


def test_scan_lists_images_by_class(tmp_path):
    _tree(tmp_path, ["usd_1/a-1.jpg", "usd_1/notes.txt", "not_a_bill/b-2.png"])
    items = dataset.scan(tmp_path)
    assert [(i.label, i.path.name) for i in items] == [
        ("not_a_bill", "b-2.png"),
        ("usd_1", "a-1.jpg"),
    ]


def test_scan_refuses_unknown_folders(tmp_path):
    _tree(tmp_path, ["usd_3/a-1.jpg"])
    with pytest.raises(ValueError, match="usd_3"):
        dataset.scan(tmp_path)


def test_split_holds_sources_out_and_is_stable(tmp_path):
    files = [f"usd_1/cemgalioglu-{k:04x}.jpg" for k in range(20)]
    files += [f"usd_1/emerson5123-{k:04x}.jpg" for k in range(20)]
    files += [f"usd_1/bluebirdseven-{k:04x}.jpg" for k in range(200)]
    items = dataset.scan(_tree(tmp_path, files))
    train, val = dataset.split(items)
    assert {i.source for i in val if i.source != "bluebirdseven"} == {"cemgalioglu"}
    assert not any(i.source == "cemgalioglu" for i in train)
    share = sum(i.source == "bluebirdseven" for i in val) / 200
    assert 0.3 < share < 0.5
    assert not {i.path for i in train} & {i.path for i in val}
    assert dataset.split(items) == (train, val)


def test_scan_can_name_the_source(tmp_path):
    _tree(tmp_path, ["usd_50/" + "ab" * 32 + ".jpg"])
    (item,) = dataset.scan(tmp_path, source=dataset.CORRECTIONS)
    assert item.source == "corrections"
    assert dataset.VALIDATION["corrections"] > 0
