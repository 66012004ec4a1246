"""JSON logs for `tidegate serve`: one object per line, with the rollout and correlation ids.

A correlation id follows one API request (X-Request-ID, or a new one) through every line it
causes; the runtime's records carry their rollout id. Values of the environment variables
that hold secrets (webhook secrets, tokens, the store URL's password) are replaced by ***
in every line, whatever logged them — a last line of defence behind the adapters' own scrubbing.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Iterable

from pythonjsonlogger.json import JsonFormatter

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")


class _Context(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get() or None
        if not hasattr(record, "rollout"):
            record.rollout = None
        if self.secrets:
            text = record.getMessage()
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


def configure(level: str = "INFO", secrets: Iterable[str] = (), json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    fields = "%(asctime)s %(levelname)s %(name)s %(message)s %(rollout)s %(correlation_id)s"
    if json_lines:
        formatter = JsonFormatter(fields, rename_fields={"levelname": "level", "asctime": "time"})
        formatter.converter = time.gmtime  # UTC, as every time tidegate shows
        formatter.default_time_format, formatter.default_msec_format = "%Y-%m-%dT%H:%M:%S", "%s.%03dZ"
        handler.setFormatter(formatter)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Context(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("transitions").setLevel(max(logging.WARNING, root.level))  # its per-callback chatter
