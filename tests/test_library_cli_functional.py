"""`zhuandi library list|show|set|reprocess|export|import` on real data directories."""

import json
from pathlib import Path

import pytest

from tests.libraries import (
    copy_data,
    prepare_catalog,
    zhuandi_here,
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory (its parent is what make_settings takes) with three lessons."""
    return prepare_catalog(tmp_path_factory.mktemp("prepared"))


@pytest.mark.timeout(90)
def test_the_cli_lists_shows_exports_and_imports_lessons(prepared: Path, tmp_path: Path) -> None:
    data = copy_data(prepared, tmp_path / "copy") / "var"
    listed = zhuandi_here("library", "list", f"--data-dir={data}")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == ["secret1", "poem1", "alg1"]
    listed = zhuandi_here("library", "list", f"--data-dir={data}", "--teacher=王老师", "--json")
    assert [x["id"] for x in json.loads(listed.stdout)] == ["secret1", "alg1"]
    shown = zhuandi_here("library", "show", "alg1", f"--data-dir={data}", "--json")
    info = json.loads(shown.stdout)
    assert info["title"] == "一元一次方程" and info["job"]["state"] == "done"
    assert zhuandi_here("library", "show", "nope", f"--data-dir={data}").returncode == 1
    assert zhuandi_here(
        "library", "set", "alg1", "--date=yesterday", f"--data-dir={data}"
    ).returncode
    # nothing to do when current; --force redoes it
    again = zhuandi_here("library", "reprocess", "alg1", f"--data-dir={data}")
    assert again.returncode == 0 and "current: nothing to do" in again.stdout
    # export, then import on another server's (empty) data directory
    exports = tmp_path / "exports"
    done = zhuandi_here(
        "library", "export", "alg1", str(exports), "--with-archive", f"--data-dir={data}"
    )
    assert done.returncode == 0, done.stderr
    metadata = json.loads((exports / "alg1" / "lesson.json").read_text())
    assert metadata["lesson"]["subject"] == "数学"
    listed_files = {f["path"] for f in metadata["files"]}
    assert {"lesson.mp4", "renditions.json", "hls/master.m3u8", "archive/archive.json"} <= (
        listed_files
    )
    assert "status.json" not in listed_files
    other = tmp_path / "other" / "var"
    done = zhuandi_here("library", "import", str(exports / "alg1"), f"--data-dir={other}")
    assert done.returncode == 0, done.stderr
    assert (other / "library/alg1/lesson.mp4").read_bytes() == (
        data / "library/alg1/lesson.mp4"
    ).read_bytes()
    info = json.loads(
        zhuandi_here("library", "show", "alg1", f"--data-dir={other}", "--json").stdout
    )
    assert info["state"] == "ready" and info["teacher"] == "王老师" and info["duration"]
    # the imported archive and renditions agree: nothing to reprocess
    again = zhuandi_here("library", "reprocess", "alg1", f"--data-dir={other}")
    assert "current: nothing to do" in again.stdout
    # twice is refused, unless under another id
    assert zhuandi_here(
        "library", "import", str(exports / "alg1"), f"--data-dir={other}"
    ).returncode
    done = zhuandi_here(
        "library", "import", str(exports / "alg1"), "--as=alg1b", f"--data-dir={other}"
    )
    assert done.returncode == 0 and (other / "library/alg1b/hls/master.m3u8").is_file()
    # a damaged or hostile export is refused, and leaves nothing behind
    damaged = copy_data(exports / "alg1", tmp_path / "damaged")
    with (damaged / "lesson.mp4").open("r+b") as handle:
        handle.seek(2000)
        handle.write(b"\x00\x01\x02")
    done = zhuandi_here("library", "import", str(damaged), "--as=bad1", f"--data-dir={other}")
    assert done.returncode == 1 and "damaged" in done.stderr
    hostile = copy_data(exports / "alg1", tmp_path / "hostile")
    meta = json.loads((hostile / "lesson.json").read_text())
    meta["files"].append({"path": "../../secret.key", "size": 1, "sha256": "0"})
    (hostile / "lesson.json").write_text(json.dumps(meta))
    done = zhuandi_here("library", "import", str(hostile), "--as=bad2", f"--data-dir={other}")
    assert done.returncode == 1 and "refused file name" in done.stderr
    assert not (other / "library" / "bad1").exists() and not (other / "library" / "bad2").exists()
