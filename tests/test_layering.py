"""ARCHITECTURE.md's import rules: imports go down only.

config/ and media/ import none of our packages; recorder/ imports only media/;
server/ is the top. web/ holds no Python logic. No catch-all modules.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"config", "media", "recorder", "server", "web", "tests", "bench"}
ALLOWED = {
    "config": set(),
    "media": set(),
    "recorder": {"media"},
    "server": {"config", "media", "recorder", "web"},
    "web": set(),
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names)
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_down_only(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = imported_packages(path) - ALLOWED[package] - {package}
        if wrong:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(wrong)}")
    assert not offenders, "\n".join(offenders)


def test_no_catch_all_modules() -> None:
    names = {"utils.py", "helpers.py", "misc.py", "common.py"}
    found = [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*.py")
        if p.name in names and ".venv" not in p.parts
    ]
    assert not found


def test_only_the_adapter_reaches_into_aiortc_privates() -> None:
    offenders = []
    for package in ("media", "recorder", "server"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "adapter.py":
                continue
            text = path.read_text(encoding="utf-8")
            for marker in (
                "_RTCRtpReceiver__",
                "_RTCRtpSender__",
                "._handle_rtp_packet",
                "._handle_rtcp_packet",
                "._send_keyframe",
                "._send_rtcp_pli",
                "aioice.ice.",
                "Encoder._packetize",
                "sender._retransmit",
                "._tx_srtp",
                "._nominated",
                "._connection",
            ):
                if marker in text:
                    offenders.append(f"{path.relative_to(ROOT)}: {marker}")
    assert not offenders, offenders
