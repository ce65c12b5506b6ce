"""Check that this environment holds exactly a lock file's packages: every pin that applies to
this platform installed at its version, and nothing installed that the lock does not list.

    python tools/check_lock.py requirements/dev.lock [--allow-extra]

Prints one line per difference and exits 1 if there is any (CI runs it on its fresh install).
The project itself (installed editable) and the installers (pip, setuptools, wheel) are not in a
lock and are ignored.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")
_NOT_LOCKED = {"scribe", "pip", "setuptools", "wheel"}


def pins(lock: Path) -> dict[str, str]:
    """The lock's pins that apply here: canonical name -> version."""
    found: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match is None:
            continue
        name, version, marker = match.groups()
        if marker is None or Marker(marker).evaluate():
            found[canonicalize_name(name)] = version
    return found


def installed() -> dict[str, str]:
    """What this environment has: canonical name -> version."""
    return {
        canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }


def differences(locked: dict[str, str], have: dict[str, str], allow_extra: bool) -> list[str]:
    """One line per package whose installed state differs from the lock."""
    lines = [
        f"{name}: locked {version}, installed {have.get(name, 'nothing')}"
        for name, version in sorted(locked.items())
        if have.get(name) != version
    ]
    if not allow_extra:
        lines += [
            f"{name}: installed {version}, not in the lock"
            for name, version in sorted(have.items())
            if name not in locked and name not in _NOT_LOCKED
        ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("--allow-extra", action="store_true", help="only check the pins")
    args = parser.parse_args()
    lines = differences(pins(args.lock), installed(), args.allow_extra)
    for line in lines:
        print(line)
    if not lines:
        print(f"{args.lock}: the environment matches the lock")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
