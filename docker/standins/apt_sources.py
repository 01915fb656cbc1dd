"""Print the host's Debian sources for one release, for a stand-in rootfs.

    python3 apt_sources.py bookworm mirror     -> the main archive URI (for debootstrap)
    python3 apt_sources.py bookworm sources    -> a deb822 sources file for the rootfs

Only Debian's own suites of that release are kept (main archive, -updates,
-security); third-party repositories the host may have are left out.
"""

import glob
import sys

APT_DIR = "/etc/apt"


def deb822_entries(text):
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split(), fields.get("components", "").split()


def one_line_entries(text):
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 4 or words[0] != "deb":
            continue
        words = [w for w in words[1:] if not w.startswith("[")]  # drop [options]
        yield words[0], [words[1]], words[2:]


def entries():
    for path in sorted(glob.glob(f"{APT_DIR}/sources.list.d/*.sources")):
        with open(path) as f:
            yield from deb822_entries(f.read())
    for path in [f"{APT_DIR}/sources.list", *sorted(glob.glob(f"{APT_DIR}/sources.list.d/*.list"))]:
        try:
            with open(path) as f:
                yield from one_line_entries(f.read())
        except FileNotFoundError:
            pass


def main(release, what):
    wanted = {release, f"{release}-updates", f"{release}-security"}
    found = {}  # uri -> suites, in the host's order
    for uri, suites, components in entries():
        keep = [s for s in suites if s in wanted]
        if keep and "main" in components:
            found.setdefault(uri.rstrip("/"), [])
            found[uri.rstrip("/")] += [s for s in keep if s not in found[uri.rstrip("/")]]
    mirror = next((u for u, s in found.items() if release in s), None)
    if mirror is None:
        sys.exit(f"no Debian mirror for {release} in {APT_DIR}/sources.list(.d)")
    if what == "mirror":
        print(mirror)
        return
    blocks = [
        f"Types: deb\nURIs: {uri}\nSuites: {' '.join(suites)}\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        for uri, suites in found.items()
    ]
    print("\n".join(blocks), end="")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
