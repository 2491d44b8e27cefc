"""The metrics' own logic (the scraped values are tested end to end in
tests/integration/test_observability.py)."""

from __future__ import annotations


def test_ja4_labels_are_bounded() -> None:
    from tlsecho.server.metrics import JA4_LABELS, Metrics

    m = Metrics(lambda: 0)
    labels = [m._ja4_label(f"t13d{i:06d}") for i in range(JA4_LABELS + 5)]
    assert labels[:JA4_LABELS] == [f"t13d{i:06d}" for i in range(JA4_LABELS)]
    assert labels[JA4_LABELS:] == ["other"] * 5
    assert m._ja4_label("t13d000000") == "t13d000000"  # a known one keeps its label
    assert m._ja4_label(None) == "malformed"


def test_the_text_line_and_the_json_record_say_the_same() -> None:
    """One ConnectionRecord feeds both: the text line names the worker, the
    endpoint and the fault exactly when the JSON record has them."""
    import json
    import logging

    from tlsecho.logs import JsonFormatter, connection_message
    from tlsecho.server.connection import ConnectionRecord, Outcome

    rec = ConnectionRecord(
        peer="192.0.2.1:5000", via="127.0.0.1:40000", tls_version="TLSv1.3",
        cipher="TLS_AES_128_GCM_SHA256", sni="localhost", alpn=None, client_cert=None,
        bytes_in=12, bytes_out=11, discarded=0, duration_s=0.25, outcome=Outcome.TERMINATED,
        reason=None, worker=2, endpoint="expired", fault="alert=protocol_version",
    )  # fmt: skip
    fields = rec.as_fields()
    assert connection_message(fields) == (
        "done peer=192.0.2.1:5000 via=127.0.0.1:40000 tls=TLSv1.3 cipher=TLS_AES_128_GCM_SHA256"
        " sni=localhost alpn=- ja4=- in=12 out=11 discarded=0 duration=0.250s end=terminated"
        " worker=2 endpoint=expired fault=alert=protocol_version"
    )
    log = logging.LogRecord("tlsecho.echo", logging.INFO, __file__, 1, "x", None, None)
    log.fields = fields
    doc = json.loads(JsonFormatter().format(log))
    assert (doc["worker"], doc["endpoint"], doc["fault"]) == (
        2,
        "expired",
        "alert=protocol_version",
    )
    assert (doc["bytes_in"], doc["outcome"], doc["via"]) == (12, "terminated", "127.0.0.1:40000")
    bare = ConnectionRecord(
        peer="127.0.0.1:1", via=None, tls_version=None, cipher=None, sni=None, alpn=None,
        client_cert=None, bytes_in=0, bytes_out=0, discarded=0, duration_s=0.0,
        outcome=Outcome.HANDSHAKE_FAILED, reason="handshake timed out",
    )  # fmt: skip
    line = connection_message(bare.as_fields())
    assert line.endswith("end=handshake-failed reason='handshake timed out'")
    assert "worker=" not in line and "via=" not in line
