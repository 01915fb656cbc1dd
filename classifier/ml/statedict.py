"""Read a PyTorch state dict with NumPy alone (no torch).

The EfficientNet-Lite0 ImageNet weights ship as a ``.pth`` file in
PyTorch's legacy container format: a run of pickles (magic number, protocol
version, system info, the state dict, the storage keys) followed by each
storage's raw little-endian data. The state dict is a pickled ``OrderedDict``
whose tensors refer to those storages; it is read here with an unpickler
that only knows the handful of names a state dict needs, so loading it
cannot run arbitrary code. (PyTorch 1.6+ writes a zip archive instead; the
weights this project uses are not in that format.)
"""

from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _TensorRef:
    __slots__ = ("key", "dtype", "offset", "size", "stride")

    def __init__(self, key, dtype, offset, size, stride):
        self.key, self.dtype, self.offset = key, dtype, offset
        self.size, self.stride = tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, offset, size, stride, *_ignored):
    key, dtype = storage
    return _TensorRef(key, dtype, offset, size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _DTYPES:
            return name
        raise pickle.UnpicklingError(f"a state dict does not contain {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        kind, storage_type, key = pid[0], pid[1], pid[2]
        if kind != "storage" or storage_type not in _DTYPES:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid[:2]!r}")
        return (str(key), _DTYPES[storage_type])


def _materialise(ref: _TensorRef, buffer: np.ndarray) -> np.ndarray:
    itemsize = buffer.itemsize
    return np.lib.stride_tricks.as_strided(
        buffer[ref.offset :],
        shape=ref.size,
        strides=tuple(s * itemsize for s in ref.stride),
    ).copy()


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch ``.pth`` state dict into a dict of NumPy arrays."""
    path = Path(path)
    with path.open("rb") as f:
        try:
            magic = pickle.load(f)  # noqa: S301 - an int; anything else is refused below
        except Exception as exc:
            raise ValueError(f"{path} is not a legacy PyTorch file") from exc
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path} is not a legacy PyTorch file")
        pickle.load(f)  # noqa: S301 - protocol version (an int)
        pickle.load(f)  # noqa: S301 - system info (a dict of ints and bools)
        refs = _StateDictUnpickler(f).load()
        keys = pickle.load(f)  # noqa: S301 - list of storage keys (strings)
        dtypes = {r.key: r.dtype for r in refs.values()}
        storages = {}
        for key in keys:
            dtype = np.dtype(dtypes[key])
            (count,) = struct.unpack("<q", f.read(8))
            raw = f.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                raise ValueError(f"{path} is truncated (storage {key})")
            storages[key] = np.frombuffer(raw, dtype=dtype)
    return {name: _materialise(ref, storages[ref.key]) for name, ref in refs.items()}
