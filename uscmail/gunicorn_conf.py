"""gunicorn settings for every deployment, `make run` included:

    gunicorn -c python:uscmail.gunicorn_conf --bind 127.0.0.1:8000 "uscmail:create_app()"

Requests are logged to stdout as `[time] "GET /unsubscribe/<redacted> HTTP/1.1" 200 1234 0.012s`: no client or
forwarded address, no referrer or user agent, no header, tokens and query strings redacted (uscmail.requestlog),
whatever `--access-logformat` asks for. gunicorn's own messages go to stderr, redacted the same way.
"""

import os

from gunicorn.glogging import Logger

from . import liveness
from .requestlog import RedactingFilter, redact_path

# Atoms a format may use; the rest (%(h)s the client, %(f)s the referrer, %(a)s the user agent, %({header}i)s …)
# come out as "-".
KEPT_ATOMS = ("t", "s", "m", "H", "b", "B", "T", "D", "M", "L", "p")


class RedactingLogger(Logger):
    """gunicorn's logger with the access-log atoms limited to KEPT_ATOMS plus a redacted request line and path."""

    def setup(self, cfg) -> None:
        """gunicorn's setup, plus redaction of the error log (it quotes request lines it could not handle)."""
        super().setup(cfg)
        if not any(isinstance(existing, RedactingFilter) for existing in self.error_log.filters):
            self.error_log.addFilter(RedactingFilter())

    def atoms(self, resp, req, environ, request_time) -> dict:
        """The values an access-log format may name, with nothing that identifies the client. Computed here as
        gunicorn computes them, not by its own atoms(), which gathers every header and environ entry of every
        request only for them to be dropped."""
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        seconds, microseconds = request_time.seconds, request_time.microseconds
        method, protocol = environ.get("REQUEST_METHOD", "-"), environ.get("SERVER_PROTOCOL", "-")
        return {
            "t": self.now(),
            "s": status,
            "m": method,
            "H": protocol,
            "b": "-" if sent is None else str(sent),
            "B": sent,
            "T": seconds,
            "D": seconds * 1_000_000 + microseconds,
            "M": seconds * 1000 + microseconds // 1000,
            "L": f"{seconds}.{microseconds:06d}",
            "p": f"<{os.getpid()}>",
            "r": f"{method} {redact_path(environ.get('RAW_URI') or environ.get('PATH_INFO', ''))} {protocol}",
            "U": redact_path(environ.get("PATH_INFO", "")),
            "q": "<redacted>" if environ.get("QUERY_STRING") else "",
        }


def post_worker_init(worker) -> None:
    """A worker reports to the arbiter while a long response makes progress (uscmail.liveness), not only between
    requests, so --timeout ends hung requests without cutting off a long export."""
    liveness.install(worker.notify)


logger_class = RedactingLogger
accesslog = "-"
access_log_format = '%(t)s "%(r)s" %(s)s %(b)s %(L)ss'
# No control socket: nothing uses it, and two servers on one machine would contend for its one default path.
control_socket_disable = True
# Sync workers (one request at a time each), woken one per connection rather than all at once (uscmail.webworker).
worker_class = "uscmail.webworker.ExclusiveSyncWorker"
