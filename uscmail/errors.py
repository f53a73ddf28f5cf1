"""Error pages: a clear message and the right status, never a stack trace."""

import contextlib

import kombu.exceptions
import redis
from flask import Flask, jsonify, make_response, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from .extensions import db
from .inputguard import UnstorableInput, UploadTooLarge
from .organisers.credentials import SecretUnreadable
from .outages import database_away

# In the page's language (organisers' pages and the API are English).
MESSAGES = {
    400: _l("Something in that request wasn't right. Please go back and try again."),
    404: _l("There is no page at this address."),
    405: _l("That page can't be used that way."),
    410: _l("This link no longer works."),
    413: _l("That was more than we accept in one go."),
    415: _l("That request was sent in a form we don't accept."),
    429: _l("Too many requests came from your network. Please wait a while and try again."),
    500: _l("Something went wrong on our side. Nothing you entered was lost; please try again later."),
    503: _l("We can't answer that just now: a part of our service is restarting. Please try again in a minute."),
}
# What a client is told to wait before trying again after a 503.
RETRY_AFTER_SECONDS = 30

TOTP_KEY_PROBLEM = (
    "Two-factor sign-in is unavailable: this server cannot read the stored authenticator keys, so nothing was checked "
    "or changed. Please tell whoever runs uscmail (its TOTP_ENCRYPTION_KEY setting is wrong or lacks an old key)."
)


def init_errorhandlers(app: Flask) -> None:
    """Register handlers for HTTP errors, CSRF failures and unexpected exceptions."""

    def render(status: int, message: str):
        message = str(message)
        # The API, and pages' scripts that ask for JSON (the compose page's autosave), get the message as JSON.
        wants_json = request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"
        if request.path.startswith("/api/") or wants_json:
            return jsonify({"error": message}), status
        return render_template("errors/error.html", status=status, message=message), status

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render(
            400,
            _l("This form expired or was sent from somewhere else. Please reload the page and try again."),
        )

    @app.errorhandler(UnstorableInput)
    def unstorable_input(error: UnstorableInput):
        return render(400, error.description)

    @app.errorhandler(UploadTooLarge)
    def upload_too_large(error: UploadTooLarge):
        return render(413, error.description)

    @app.errorhandler(SecretUnreadable)
    def totp_key_error(error: SecretUnreadable):
        # The server's key is wrong, not the request: say so plainly, change nothing, and tell the operator.
        app.logger.error("TOTP secret unreadable: %s", error)
        db.session.rollback()
        return render(503, TOTP_KEY_PROBLEM)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        return render(status, MESSAGES.get(status, error.description or "Something went wrong."))

    @app.errorhandler(DBAPIError)
    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    @app.errorhandler(kombu.exceptions.OperationalError)  # the broker, for a view that queues a task
    def service_away(error: Exception):
        # The database or Redis is out of reach (restarting, say): a 503 that says so, not a 500 and a stack trace.
        # Anything else the database refuses (a bug) stays a 500.
        if isinstance(error, DBAPIError) and not database_away(error):
            return unexpected_error(error)
        app.logger.warning("a service is out of reach: %s", type(error).__name__)
        with contextlib.suppress(DBAPIError):
            db.session.rollback()
        response = make_response(render(503, MESSAGES[503]))
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        app.logger.exception("unhandled error")
        db.session.rollback()
        return render(500, MESSAGES[500])
