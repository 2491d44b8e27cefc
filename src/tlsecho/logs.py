"""Log set-up in the original example's format: ``name: message``.

Loggers live under ``tlsecho.``; the formatter shows the last part of the
name (``main``), or a per-connection tag passed as ``extra={"tag": ...}``
(``echo_::1_53957``), so no logger is created per connection.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = [
    "JsonFormatter",
    "TagFormatter",
    "configure",
    "connection_message",
    "get_logger",
    "plural",
]


def plural(n: int, noun: str) -> str:
    """``1 connection``, ``2 connections``, ``0 connections``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def outcome_counts(outcomes: Mapping[str, int]) -> str:
    """``eof=2, terminated=9`` (sorted), or ``none``: the summary lines' counts."""
    return ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())) or "none"


def connection_message(fields: Mapping[str, Any]) -> str:
    """The text of a finished connection's log line, from the same fields as
    its JSON record (:meth:`tlsecho.server.connection.ConnectionRecord.as_fields`)."""
    via = f" via={fields['via']}" if fields["via"] else ""
    reason = f" reason={fields['reason']!r}" if fields["reason"] else ""
    worker = f" worker={fields['worker']}" if fields.get("worker") is not None else ""
    if fields.get("endpoint"):
        worker += f" endpoint={fields['endpoint']}"
    if fields.get("fault"):
        worker += f" fault={fields['fault']}"
    return (
        f"done peer={fields['peer']}{via} tls={fields['tls_version'] or '-'}"
        f" cipher={fields['cipher'] or '-'} sni={fields['sni'] or '-'}"
        f" alpn={fields['alpn'] or '-'} ja4={fields.get('ja4') or '-'}"
        f" in={fields['bytes_in']} out={fields['bytes_out']}"
        f" discarded={fields['discarded']} duration={fields['duration_s']:.3f}s"
        f" end={fields['outcome']}{reason}{worker}"
    )


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


class JsonFormatter(logging.Formatter):
    """One JSON object per line.

    Every object has ``ts`` (RFC 3339, UTC), ``level``, ``logger`` (the tag)
    and ``event``. A finished connection is ``"event": "connection"`` with
    the stable keys ``peer``, ``via``, ``tls_version``, ``cipher``, ``sni``,
    ``alpn``, ``ja4``, ``client_cert``, ``bytes_in``, ``bytes_out``, ``discarded``,
    ``duration_s``, ``outcome``, ``reason``, ``worker`` (with ``--workers``;
    else null) and ``endpoint`` (``tlsecho badssl``; else null), and when the
    ClientHello was read, what it offered (``ja3``, ``ja3_hash``, ``ja4_r``,
    ``offered_versions``, ``offered_cipher_suites``, ``offered_groups``,
    ``offered_key_share_groups``, ``offered_signature_algorithms``,
    ``offered_alpn``: IANA names, GREASE as ``GREASE``). In ``--mode http``
    each answered request is ``"event": "request"`` with ``method``,
    ``target``, ``http_version`` and ``status`` (the text access line); other
    lines are ``"event": "log"`` with a ``message``.
    """

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        obj: dict[str, object] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": getattr(record, "tag", None) or record.name.rpartition(".")[2],
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            obj.update(fields)
            raw = getattr(record, "hello", None)
            hello = raw.parsed() if raw is not None else None
            if hello is not None:
                obj.update(hello.log_fields())
        else:
            obj["event"] = "log"
            obj["message"] = record.getMessage()
        if record.exc_info:
            obj["traceback"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False)


def get_logger(name: str) -> logging.Logger:
    """The package logger ``tlsecho.<name>``."""
    return logging.getLogger(f"tlsecho.{name}")


class _Labelled(logging.Filter):
    """Names the process in its own lines (``worker2: starting up ...``)."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "tlsecho.main" and not hasattr(record, "tag"):
            record.tag = self.label
        return True


def configure(
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
    fmt: str = "text",
    label: str | None = None,
) -> None:
    """Send log records at ``level`` and above to ``stream`` (stderr), as
    ``text`` (the original's ``name: message``) or ``json`` lines.

    The root logger is configured so that asyncio's own debug line
    (``asyncio: Using selector: ...``) shows at debug level, as in the
    original transcript. ``label`` replaces ``main`` in this process's own
    lines (a worker's number).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TagFormatter())
    if label is not None:
        handler.addFilter(_Labelled(label))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
