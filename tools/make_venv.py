"""Create the project's virtualenv with only the Python standard library.

Debian and Ubuntu ship Python without ``ensurepip`` unless ``python3-venv`` is installed; then
the venv is created without pip and pip is bootstrapped from its wheel on PyPI (a pip wheel can
run itself). Usage: python3 tools/make_venv.py .venv
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import venv
from pathlib import Path

PYPI_PIP = "https://pypi.org/pypi/pip/json"


def _pip_wheel(target: Path) -> Path:
    with urllib.request.urlopen(PYPI_PIP, timeout=60) as response:
        release = json.load(response)
    wheel = next(f for f in release["urls"] if f["filename"].endswith(".whl"))
    path = target / wheel["filename"]
    urllib.request.urlretrieve(urllib.parse.urljoin(PYPI_PIP, wheel["url"]), path)
    return path


def main(directory: str) -> int:
    target = Path(directory)
    if sys.version_info < (3, 11):  # noqa: UP036 (this script runs under any python3)
        print(f"Python >= 3.11 is required, this is {sys.version.split()[0]}", file=sys.stderr)
        return 1
    try:
        import ensurepip  # noqa: F401
    except ImportError:
        has_ensurepip = False
    else:
        has_ensurepip = True
    python = target / "bin" / "python"
    if python.exists():
        return 0  # an existing venv: the Makefile's pip install refreshes what is in it
    # Symlinks, as `python3 -m venv` makes them on POSIX.
    venv.EnvBuilder(with_pip=has_ensurepip, symlinks=True).create(target)
    if not has_ensurepip:
        print("no ensurepip (python3-venv not installed): bootstrapping pip from PyPI")
        with tempfile.TemporaryDirectory() as tmp:
            wheel = _pip_wheel(Path(tmp))
            subprocess.run([python, f"{wheel}/pip", "install", "--quiet", str(wheel)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".venv"))
