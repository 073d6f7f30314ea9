"""Data directories with processed library lessons, made through the real CLI
(`zhuandi library reprocess` and `set`), for the library's server and browser tests."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.archives import Part, make_archive

ROOT = Path(__file__).resolve().parent.parent


def zhuandi(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the `zhuandi` command (as `python -m server.cli`)."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def prepare_library(data_dir: Path, lessons: dict[str, tuple[list[Part], dict[str, str]]]) -> Path:
    """Archives for `lessons` (id -> parts, metadata for `library set`), processed."""
    for lesson_id, (parts, _) in lessons.items():
        make_archive(data_dir / "recordings" / lesson_id, parts, lesson=lesson_id)
    done = zhuandi("library", "reprocess", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    for lesson_id, (_, metadata) in lessons.items():
        flags = [f"--{name}={value}" for name, value in metadata.items()]
        done = zhuandi("library", "set", lesson_id, "--data-dir", str(data_dir), *flags)
        assert done.returncode == 0, done.stderr
    return data_dir


def copy_data(source: Path, target: Path) -> Path:
    """A copy of a data directory for a test that changes it."""
    shutil.copytree(source, target, symlinks=True)
    return target
