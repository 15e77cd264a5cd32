"""The installed package, not the checkout: what a wheel (the images' `pip install .`) holds.

An editable install reads data files from the source tree, so a file left out of the
package data passes every other test and fails only in an image (the worker could not load
the concept vocabulary in the compose stack: `make compose-smoke` found it).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "encoder", "export")


def test_the_wheel_holds_every_file_the_packages_read(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("interest_stream-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert "streams/concepts/movielens-genres.txt" in wanted
    assert wanted - inside == set()
