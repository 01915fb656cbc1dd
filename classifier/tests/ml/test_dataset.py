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


def test_scan_gives_misfiled_photos_the_note_they_show(tmp_path):
    misfiled = next(iter(dataset.RELABEL))
    folder, name = misfiled.split("/")
    _tree(tmp_path, [misfiled, f"{folder}/{name.replace('-', '-0')}"])
    items = {i.path.name: i.label for i in dataset.scan(tmp_path)}
    assert items[name] == dataset.RELABEL[misfiled] != folder
    assert items[name.replace("-", "-0")] == folder


def test_relabelled_files_exist_where_listed(dataset_dir):
    for rel, label in dataset.RELABEL.items():
        assert (dataset_dir / rel).is_file(), rel
        assert label in dataset.CLASSES
        assert rel.split("/")[0] != label


def test_scan_can_name_the_source(tmp_path):
    _tree(tmp_path, ["usd_50/" + "ab" * 32 + ".jpg"])
    (item,) = dataset.scan(tmp_path, source=dataset.CORRECTIONS)
    assert item.source == "corrections"
    assert dataset.VALIDATION["corrections"] > 0


def test_currencies_come_from_the_index_and_are_held_out_whole(tmp_path):
    foreign = [f"not_a_bill/waleedsid-{k:04x}.jpg" for k in range(30)]
    foreign += [f"not_a_bill/yahiabak-{k:04x}.jpg" for k in range(30)]
    root = _tree(tmp_path / "train", [*foreign, "usd_1/emerson5123-0001.jpg"])
    rows = ["file,class,source,currency,kind,licence,repository"]
    rows += [
        f"train/{f},not_a_bill,{f.split('/')[1].split('-')[0]},"
        f"{'PKR' if 'waleedsid' in f else 'MAD'},phone photo,MIT,x/y"
        for f in foreign
    ]
    rows.append("train/usd_1/emerson5123-0001.jpg,usd_1,emerson5123,USD,flat photo,MIT,x/y")
    (tmp_path / "index.csv").write_text("\n".join(rows) + "\n")

    items = dataset.scan(root)
    by_name = {i.path.name: i for i in items}
    assert by_name["yahiabak-0000.jpg"].currency == "MAD"
    assert by_name["waleedsid-0000.jpg"].group == "PKR"
    assert by_name["emerson5123-0001.jpg"].currency == ""  # US notes have no foreign currency
    assert by_name["emerson5123-0001.jpg"].group == "emerson5123"

    train, val = dataset.split(items, currencies=frozenset({"MAD"}))
    assert {i.currency for i in val} == {"MAD"}
    assert len(val) == 30  # every MAD photo, none of the PKR ones
    assert "MAD" in dataset.HELD_OUT_CURRENCIES
    assert not dataset.HELD_OUT_CURRENCIES & {i.currency for i in train}


def test_real_data_split_holds_out_whole_currencies_and_us_sources(dataset_dir):
    train, val = dataset.split(dataset.scan(dataset_dir))
    held = {i.currency for i in val if i.currency}
    assert held == set(dataset.HELD_OUT_CURRENCIES)
    assert not held & {i.currency for i in train}
    assert {"projpossibility", "ptbarros"} <= {i.source for i in val}
    assert not {"projpossibility", "ptbarros"} & {i.source for i in train}
    # Every note is in validation, $50 and $100 included.
    assert {i.label for i in val} == {i.label for i in train}
