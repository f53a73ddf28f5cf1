"""gunicorn settings for every deployment, `make run` included:

    gunicorn -c python:uscmail.gunicorn_conf --bind 127.0.0.1:8000 "uscmail:create_app()"

Requests are logged to stdout as `[time] "GET /unsubscribe/<redacted> HTTP/1.1" 200 1234 0.012s`: no client or
forwarded address, no referrer or user agent, no header, tokens and query strings redacted (uscmail.requestlog),
whatever `--access-logformat` asks for. gunicorn's own messages go to stderr, redacted the same way.
"""

from gunicorn.glogging import Logger

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
        """The values an access-log format may name, with nothing that identifies the client."""
        every = super().atoms(resp, req, environ, request_time)
        atoms = {name: every[name] for name in KEPT_ATOMS}
        method, protocol = environ.get("REQUEST_METHOD", "-"), environ.get("SERVER_PROTOCOL", "-")
        atoms["r"] = f"{method} {redact_path(environ.get('RAW_URI') or environ.get('PATH_INFO', ''))} {protocol}"
        atoms["U"] = redact_path(environ.get("PATH_INFO", ""))
        atoms["q"] = "<redacted>" if environ.get("QUERY_STRING") else ""
        return atoms


logger_class = RedactingLogger
accesslog = "-"
access_log_format = '%(t)s "%(r)s" %(s)s %(b)s %(L)ss'
# No control socket: nothing uses it, and two servers on one machine would contend for its one default path.
control_socket_disable = True
