"""Log lines as text or as one JSON object per line (``--log-format json``).

The same configuration goes to uvicorn (``log_config``), so every process it starts,
workers included, logs the same way: to stderr, WARNING and above.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, RFC 3339), level, logger, message, process;
    the exception as text; extra fields passed with ``extra=`` as they are."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        return json.dumps(doc, default=str, ensure_ascii=False)


def log_config(fmt: str) -> dict[str, Any]:
    """A logging.config dict for uvicorn.run(log_config=...)."""
    formatter: dict[str, Any] = (
        {"()": "vallum.server.logs.JsonFormatter"} if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {name: {"handlers": [], "level": "WARNING", "propagate": True}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }
