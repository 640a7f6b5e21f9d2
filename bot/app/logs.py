"""Logging that cannot leak secrets: every record passes through a redacting filter."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from providers.base import redact

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: record attributes (logging's `extra=`) copied into each JSON line when present
JSON_EXTRAS = ("message_id", "job_id")


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            cleaned = redact(message, self.secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            # Tracebacks too: formatters reuse exc_text once it is set.
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text, self.secrets)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, message_id / job_id, exception.

    It formats what the redacting filter left, so secrets are gone before it sees them."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in JSON_EXTRAS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value if isinstance(value, int | str) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def setup_logging(secrets: list[str], level: int = logging.INFO, log_format: str | None = None) -> None:
    """Redact `secrets` on every handler of the root logger; `log_format` ("text" or "json")
    sets the formatter of the stream handlers too (None: keep what is there)."""
    root = logging.getLogger()
    if not any(isinstance(h, logging.StreamHandler) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(formatter_for(log_format or "text"))
        root.addHandler(handler)
    elif log_format is not None:
        for existing in root.handlers:
            if type(existing) is logging.StreamHandler:  # ours, not pytest's capture handlers
                existing.setFormatter(formatter_for(log_format))
    root.setLevel(level)
    # httpx logs every request at INFO: a line per message sent (100,000 for one bulk job)
    # says nothing the store does not; its failures reach our own log as outcomes.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
    redactor = RedactSecrets(secrets)
    for existing in root.handlers:
        existing.filters = [f for f in existing.filters if not isinstance(f, RedactSecrets)]
        existing.addFilter(redactor)
