"""Log set-up in the original example's format: ``name: message``.

Loggers live under ``tlsecho.``; the formatter shows the last part of the
name (``main``), or a per-connection tag passed as ``extra={"tag": ...}``
(``echo_::1_53957``), so no logger is created per connection.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["TagFormatter", "configure", "get_logger"]


class TagFormatter(logging.Formatter):
    """``tag: message``, the original example's ``%(name)s: %(message)s``."""

    def format(self, record: logging.LogRecord) -> str:
        tag = getattr(record, "tag", None)
        if tag is None:
            tag = (
                record.name.rpartition(".")[2]
                if record.name.startswith("tlsecho.")
                else record.name
            )
        line = f"{tag}: {record.getMessage()}"
        if record.exc_info:
            # Only our own bugs carry exc_info; a peer's mistake never does.
            line += "\n" + self.formatException(record.exc_info)
        return line


def get_logger(name: str) -> logging.Logger:
    """The package logger ``tlsecho.<name>``."""
    return logging.getLogger(f"tlsecho.{name}")


def configure(level: int | str = logging.INFO, stream: TextIO | None = None) -> None:
    """Send log records at ``level`` and above to ``stream`` (stderr).

    The root logger is configured so that asyncio's own debug line
    (``asyncio: Using selector: ...``) shows at debug level, as in the
    original transcript.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TagFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
