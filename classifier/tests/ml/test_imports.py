"""The serving path must stay light: no TensorFlow, no Django."""

import subprocess
import sys

from .conftest import REPO

CODE = """
import sys
from classifier.ml.predictor import Predictor
p = Predictor.load(sys.argv[1])
import io
from PIL import Image
buf = io.BytesIO(); Image.new("RGB", (50, 50), "green").save(buf, "PNG")
p.predict(buf.getvalue())
heavy = sorted(
    m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "django", "torch")
)
print(",".join(heavy) or "none")
"""


def test_predicting_imports_neither_tensorflow_nor_django(tiny_model_dir):
    out = subprocess.run(
        [sys.executable, "-c", CODE, str(tiny_model_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "none"


def test_ml_package_never_imports_django():
    for path in (REPO / "classifier" / "ml").glob("*.py"):
        text = path.read_text()
        assert "import django" not in text, path
        assert "from django" not in text, path
