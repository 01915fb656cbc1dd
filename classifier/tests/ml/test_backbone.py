"""The Keras EfficientNet-Lite0 with the copied ImageNet weights recognises
natural photos that ship with scikit-image."""

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("keras", reason="the backbone needs requirements-train.txt")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")

from classifier.ml import backbone  # noqa: E402
from classifier.ml.preprocess import to_input  # noqa: E402
from classifier.ml.statedict import load_state_dict  # noqa: E402

pytestmark = pytest.mark.tensorflow

# ImageNet class indices.
CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def model():
    return backbone.pretrained()


def _top5(model, array):
    x = to_input(Image.fromarray(array), policy="crop")[np.newaxis]
    logits = model.predict(x, verbose=0)[0]
    return list(np.argsort(logits)[::-1][:5])


def test_cat_photo_is_a_cat(model):
    top5 = _top5(model, skimage_data.chelsea())
    assert top5[0] in CATS, top5


def test_coffee_photo_is_espresso(model):
    assert _top5(model, skimage_data.coffee())[0] == ESPRESSO


def test_every_weight_is_used_and_shapes_match():
    state = load_state_dict(backbone.weights_path())
    model = backbone.efficientnet_lite0()
    before = [w.copy() for w in model.get_layer("block5_dwconv").get_weights()]
    backbone.load_imagenet_weights(model)
    after = model.get_layer("block5_dwconv").get_weights()
    assert not np.allclose(before[0], after[0])
    assert np.allclose(after[0], state["_blocks.5._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    n_params = sum(int(np.prod(w.shape)) for w in model.weights if "moving" not in w.path)
    assert 4_600_000 < n_params < 4_700_000


def test_state_dict_reader_on_the_shipped_file():
    state = load_state_dict(backbone.weights_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64


def test_state_dict_reader_refuses_other_files(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(b"PK\x03\x04 not a legacy file")
    with pytest.raises(ValueError, match="legacy PyTorch"):
        load_state_dict(path)


@pytest.mark.parametrize("key", sorted(backbone.BACKBONES))
def test_every_listed_backbone_loads_its_weights_and_sees_a_cat(key):
    spec = backbone.BACKBONES[key]
    model = spec.build()
    x = to_input(Image.fromarray(skimage_data.chelsea()), size=spec.input_size, policy="crop")
    logits = model.predict(x[np.newaxis], verbose=0)[0]
    assert int(np.argmax(logits)) in CATS
    assert model.get_layer(spec.cut_layer) is not None
    assert spec.short in ("effl0", "effl1", "effl2")
