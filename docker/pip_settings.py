"""Print this host's pip index settings that a container build can use.

    python docker/pip_settings.py    -> PIP_INDEX_URL=..., one VAR=value a line

From the environment first, else from `pip config`. Only http(s) indexes are
kept: a file:// index on the host means nothing inside a container.
"""

import os
import subprocess
import sys

SETTINGS = (
    ("PIP_INDEX_URL", "index-url"),
    ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
    ("PIP_TRUSTED_HOST", "trusted-host"),
)


def main():
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    conf = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        conf[key.split(".", 1)[-1]] = value.strip().strip("'\"")
    for name, key in SETTINGS:
        value = os.environ.get(name) or conf.get(key, "")
        if key != "trusted-host":
            value = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
