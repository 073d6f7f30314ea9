"""A text progress bar for a terminal, or plain lines when output is not one."""

import sys
from typing import TextIO

WIDTH = 30


class ProgressBar:
    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty()
        self._shown: tuple[str, int] | None = None

    def show(self, percent: float, stage: str) -> None:
        if self.tty:
            filled = round(WIDTH * percent / 100)
            bar = "#" * filled + "-" * (WIDTH - filled)
            self.stream.write(f"\r{self.label} [{bar}] {percent:5.1f}% {stage:<12}")
            self.stream.flush()
            return
        # a log or a pipe: one line per stage and per tenth
        key = (stage, int(percent // 10))
        if key != self._shown:
            self._shown = key
            print(f"{self.label} {percent:5.1f}% {stage}", file=self.stream, flush=True)

    def end(self, message: str) -> None:
        if self.tty:
            self.stream.write("\n")
        print(f"{self.label} {message}", file=self.stream, flush=True)
