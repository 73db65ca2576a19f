"""Structured logging: one JSON object per line on stderr, the same in every process.

Each line has ``ts`` (RFC3339 UTC), ``level``, ``src`` (the role or ``supervisor``), ``pid``,
``logger`` and ``msg``; exceptions add ``exc``. Secrets never go into log calls in the first
place; this module only formats.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import orjson

CHATTY_LIBRARIES = ("oandapyV20", "urllib3", "requests")


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one JSON line."""

    def __init__(self, src: str) -> None:
        super().__init__()
        self.src = src

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "src": self.src,
            "pid": os.getpid(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def setup_logging(level: str, *, src: str) -> None:
    """Send every log record of this process to stderr as JSON lines."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter(src))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # oandapyV20 logs every request at info level; keep that for debug runs only.
    chatty_level = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(chatty_level)
