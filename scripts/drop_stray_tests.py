"""Remove top-level `tests` packages that dependencies install into site-packages.

markdown-to-mrkdwn 0.3 ships its own test suite as a top-level `tests` package. Run from
any folder but this one, `import tests` would find that package instead of the project's
and `tests.fakes` would not exist. Only files a distribution's RECORD lists are removed,
and only when that distribution is not this project.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

PROJECT = "autogen-slack"


def stray_test_files() -> list[Path]:
    found: list[Path] = []
    for distribution in metadata.distributions():
        if distribution.metadata["Name"] == PROJECT:
            continue
        for file in distribution.files or []:
            if file.parts and file.parts[0] == "tests":
                found.append(Path(str(distribution.locate_file(file))))
    return found


def main() -> int:
    removed = 0
    folders: set[Path] = set()
    for path in stray_test_files():
        if path.is_file():
            path.unlink()
            removed += 1
        folders.add(path.parent)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        for cache in folder.glob("__pycache__"):
            for compiled in cache.iterdir():
                compiled.unlink()
            cache.rmdir()
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if removed:
        print(f"removed {removed} stray file(s) of a top-level `tests` package from site-packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
