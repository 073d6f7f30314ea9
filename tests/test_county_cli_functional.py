"""`zhuandi admin|directory|device|schedule` on a data directory, run in-process."""

import io
import subprocess
from pathlib import Path

import pytest

from server.county import open_county
from tests.libraries import zhuandi_here


def run(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(stdin))
        return zhuandi_here(*args, f"--data-dir={data}")


@pytest.mark.timeout(60)
def test_a_county_is_set_up_from_the_shell_with_clear_errors(tmp_path: Path) -> None:
    data = tmp_path / "var"
    refused = run(data, "admin", "add", "--county", "boss")  # no password on stdin
    assert refused.returncode == 1
    assert refused.stderr == "zhuandi admin: a password needs 8 to 256 characters\n"
    assert run(data, "admin", "add", "--county", "boss", stdin="long enough\n").returncode == 0
    again = run(data, "admin", "add", "--county", "boss", stdin="long enough\n")
    assert "administrator boss already exists" in again.stderr
    nowhere = run(data, "admin", "add", "--school", "town", "head", stdin="long enough\n")
    assert "there is no school town; add it first" in nowhere.stderr
    for args in (
        ("directory", "add", "school", "town", "城关小学"),
        ("directory", "add", "school", "east", "东村小学"),
        ("directory", "add", "classroom", "town-301", "城关小学 301", "--school", "town"),
        ("directory", "add", "classroom", "east-1", "东村小学 一班", "--school", "east"),
        ("directory", "add", "teacher", "wang", "王老师", "--school", "town"),
        ("directory", "add", "subject", "音乐"),
    ):
        done = run(data, *args)
        assert done.returncode == 0, done.stderr
    assert (
        run(data, "admin", "add", "--school", "town", "head", stdin="long enough\n").returncode == 0
    )
    assert "head\tschool\ttown" in run(data, "admin", "list").stdout
    assert "needs --school" in run(data, "directory", "add", "teacher", "li", "李老师").stderr

    link = run(data, "device", "token", "east-1")
    assert link.stdout.startswith("http://localhost:8080/room/east-1?device=")
    assert "already has a device token" in run(data, "device", "token", "east-1").stderr
    rotated = run(data, "device", "rotate", "east-1").stdout.strip()
    assert rotated != link.stdout.strip()
    assert run(data, "device", "revoke", "east-1").returncode == 0
    county = open_county(data, "Asia/Shanghai")
    try:
        assert county.directory.classroom("east-1").token == "revoked"  # type: ignore[union-attr]
    finally:
        county.close()
    assert "no classroom nowhere" in run(data, "device", "token", "nowhere").stderr


BAD = """date,period,start,end,host,receivers,teacher,subject,title
2026-03-02,2,08:55,09:35,town-301,east-1,wang,音乐,好
2026-03-02,3,9:50,10:30,town-301,east-1,wang,音乐
2026-03-03,1,08:00,08:40,town-301,east-1,nobody,音乐,谁教
"""
CLEAN = """date,period,start,end,host,receivers,teacher,subject,title,repeat_until
2026-03-02,2,08:55,09:35,town-301,east-1,wang,音乐,唱游,2026-03-16
"""


@pytest.mark.timeout(60)
def test_schedule_import_refuses_a_file_with_bad_lines_and_takes_a_clean_one(
    tmp_path: Path,
) -> None:
    data = tmp_path / "var"
    for args in (
        ("directory", "add", "school", "town", "城关小学"),
        ("directory", "add", "classroom", "town-301", "301", "--school", "town"),
        ("directory", "add", "classroom", "east-1", "东村", "--school", "town"),
        ("directory", "add", "teacher", "wang", "王老师", "--school", "town"),
        ("directory", "add", "subject", "音乐"),
    ):
        assert run(data, *args).returncode == 0
    bad, clean = tmp_path / "bad.csv", tmp_path / "clean.csv"
    bad.write_text(BAD, encoding="utf-8")
    clean.write_text(CLEAN, encoding="utf-8")

    refused = run(data, "schedule", "import", str(bad))
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"zhuandi schedule: {bad}: line 3: title is missing",
        "zhuandi schedule: nothing was imported (1 problems)",
    ]
    bad.write_text(BAD.replace(",音乐\n2026-03-03", ",音乐,有题\n2026-03-03"), encoding="utf-8")
    refused = run(data, "schedule", "import", str(bad))
    assert "line 4: there is no teacher nobody" in refused.stderr
    listed = run(data, "schedule", "list", "--from", "2026-03-01", "--to", "2026-03-31")
    assert listed.stdout.strip() == "0 lessons from 2026-03-01 to 2026-03-31"

    done = run(data, "schedule", "import", str(clean))
    assert done.returncode == 0 and "imported 3 lessons from 1 lines" in done.stdout
    listed = run(data, "schedule", "list", "--from", "2026-03-01", "--to", "2026-03-31")
    assert listed.stdout.count("唱游") == 3
    added = run(
        data,
        "schedule",
        "add",
        "--title",
        "加课",
        "--subject",
        "音乐",
        "--teacher",
        "wang",
        "--host",
        "east-1",
        "--receivers",
        "town-301",
        "--date",
        "2026-03-09",
        "--start",
        "09:00",
        "--end",
        "09:40",
    )
    assert added.returncode == 1
    assert "teacher 王老师 (wang) already teaches on 2026-03-09" in added.stderr
    assert added.stderr.endswith("nothing was scheduled\n")
    lesson = listed.stdout.split()[0]
    assert run(data, "schedule", "remove", lesson, "--series").stdout == "removed 3 lessons\n"
