"""What request logs may say. Link tokens (/confirm/, /unsubscribe/, /preferences/, /organisers/enrol/) are keys
to a person's subscriptions or an organiser's account and name them to anyone who can read the log, and query strings
can carry addresses (a search, a prefilled form): both are redacted. Client addresses are left out entirely (no raw IP
is kept anywhere).

uscmail.gunicorn_conf applies this to gunicorn's access log (`make run` and production); `install` applies it to
the app's own log and to werkzeug's, for anyone who serves the app with `flask run`.
"""

import logging
import re

REDACTED = "<redacted>"
# The path segment after each token route's prefix is the token.
TOKEN_PATH = re.compile(r"(/(?:confirm|unsubscribe|preferences|organisers/enrol)/)[^/?#\s\"']+")
# A query string in free text: after a path (text from a slash onwards), not a question mark in a sentence.
QUERY = re.compile(r"((?:^|[\s\"'])(?:https?://[^\s/\"']+)?/[^\s?\"']*)\?[^\s\"']+")
# gunicorn warns of a malformed request with "Invalid request from ip=ADDRESS: error" (IPv6 has no ": ").
GUNICORN_CLIENT = re.compile(r"\bip=\S*?(?=: )")
# werkzeug's request line starts with the client's address: `127.0.0.1 - - [date] "GET / HTTP/1.1" 200 -`.
WERKZEUG_CLIENT = re.compile(r"^\S+ - - \[")


def redact_path(path: str) -> str:
    """The path with link tokens replaced by <redacted>, and any query string by `?<redacted>`."""
    path, mark, query = path.partition("?")
    return TOKEN_PATH.sub(rf"\g<1>{REDACTED}", path) + (f"?{REDACTED}" if mark and query else mark)


def redact_text(text: str) -> str:
    """Free text (a log message) with any token path, query string and gunicorn's `ip=` in it redacted."""
    text = GUNICORN_CLIENT.sub(f"ip={REDACTED}", text)
    return QUERY.sub(rf"\g<1>?{REDACTED}", TOKEN_PATH.sub(rf"\g<1>{REDACTED}", text))


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with token paths and query strings redacted, and the client address that
    werkzeug puts first in its request lines removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record, rewritten."""
        message = redact_text(record.getMessage())
        if record.name == "werkzeug":
            message = WERKZEUG_CLIENT.sub("- - - [", message)
        record.msg, record.args = message, None
        return True


def install(app_logger: logging.Logger) -> None:
    """Redact the app's log records (Flask logs the path of a request that raised) and werkzeug's request lines."""
    redacting = RedactingFilter()
    for logger in (app_logger, logging.getLogger("werkzeug")):
        if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
            logger.addFilter(redacting)
