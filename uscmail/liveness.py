"""Tell the web server that a long response is still making progress.

gunicorn's sync workers report to their arbiter only between requests, and the arbiter kills a worker that has not
reported for `--timeout` seconds (30 by default): that is how a hung request is ended. A response that is streamed
for longer than that while making progress all along (the CSV export of a million subscribers takes about half a
minute) would be cut off part way. Such a response calls still_working() after each part it sends: the worker
reports, and a request that stops making progress is still ended after the timeout. An organiser's upload does the
same while its body arrives (ReportingInput): a 200 MB CSV over a slow uplink takes minutes.

uscmail.gunicorn_conf installs the worker's report here; elsewhere (`flask run`, the tests' client, a Celery worker)
still_working() does nothing.
"""

from collections.abc import Callable

_report: Callable[[], None] | None = None


def install(report: Callable[[], None] | None) -> None:
    """Call `report` (a gunicorn worker's notify) whenever still_working() is called; None to stop."""
    global _report
    _report = report


def still_working() -> None:
    """A long response has sent another part: the worker is not hung."""
    if _report is not None:
        _report()


class ReportingInput:
    """A request's input stream (wsgi.input) whose every read is progress: an upload arriving slowly but steadily
    keeps its worker; one that stops (no part read within the timeout) does not. Only for signed-in organisers'
    uploads: a stranger's slow body must not hold a worker (uscmail.inputguard)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        """Read as the stream does, then report progress."""
        data = self._stream.read(size)
        still_working()
        return data

    def readline(self, size: int = -1) -> bytes:
        """Read a line as the stream does, then report progress."""
        line = self._stream.readline(size)
        still_working()
        return line
