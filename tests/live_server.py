"""Serve the test app over real HTTP on 127.0.0.1, in a background thread, for browser tests."""

import threading

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log lines."""

    def log_request(self, code="-", size="-"):
        pass


def closing(app: Flask):
    """The app, its answers closed however their sending ends. Werkzeug's server closes an answer only after reading
    what is left of the request; when the browser has gone (a test abandons a request), that read raises first, and a
    static file's answer was left open until garbage collection warned of it, failing whichever test was running."""

    def application(environ, start_response):
        answer = app(environ, start_response)

        def body():
            try:
                yield from answer
            finally:
                if hasattr(answer, "close"):
                    answer.close()

        return body()

    return application


class LiveServer:
    """A threaded werkzeug server on a free port; `url` is its origin, `stop()` shuts it down."""

    def __init__(self, app: Flask, host: str = "127.0.0.1"):
        self.server = make_server(host, 0, closing(app), threaded=True, request_handler=QuietRequestHandler)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def start(self) -> "LiveServer":
        """Begin serving in a daemon thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
