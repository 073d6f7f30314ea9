"""Text messages between the teacher and the classrooms, kept with the lesson.

Each message is appended to the lesson's archive directory as one JSON line
(chat.jsonl), so that it is kept with the recording and exported with it.
"""

import json
import time
from collections import deque
from pathlib import Path
from typing import Any

from server.errors import UserError

MAX_TEXT = 500
HISTORY = 200
RATE_WINDOW = 10.0
RATE_LIMIT = 10  # messages per window per peer


class Chat:
    def __init__(self, directory: Path) -> None:
        self._path = directory / "chat.jsonl"
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._recent: dict[str, deque[float]] = {}
        if self._path.exists():
            for line in self._path.read_text(encoding="utf-8").splitlines()[-HISTORY:]:
                try:
                    self.history.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut by a crash

    def post(self, peer_id: str, name: str, role: str, text: str) -> dict[str, Any]:
        text = text.strip()
        if not text:
            raise UserError("bad_message", "a chat message cannot be empty")
        if len(text) > MAX_TEXT:
            raise UserError("bad_message", f"a chat message has at most {MAX_TEXT} characters")
        now = time.time()
        recent = self._recent.setdefault(peer_id, deque())
        while recent and recent[0] < now - RATE_WINDOW:
            recent.popleft()
        if len(recent) >= RATE_LIMIT:
            raise UserError("rate_limited", "too many chat messages; wait a few seconds")
        recent.append(now)
        message = {"type": "chat", "from": name, "role": role, "text": text, "time": now}
        self.history.append(message)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(message, ensure_ascii=False) + "\n")
        return message
