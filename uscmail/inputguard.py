"""Input nothing may store, refused before any view sees it: NUL bytes and lone surrogates in pages' addresses, queries
and forms (PostgreSQL can't store them and UTF-8 can't encode them), JSON nested deeper than any of our documents, and
ids beyond the database's range (`database_id`).

Each is answered 400 with a message that says what was wrong, so no such input can reach the database and come back as
a 500. The JSON API checks each field itself (and names the field in its 422), so only nesting is refused for it here.

Pages that take files larger than MAX_CONTENT_LENGTH say so with `upload_limit`: the larger limit applies before
anything here (or CSRF protection) reads the body, and a body over it is answered 413 with a message naming the limit.
"""

import json
import re
from collections.abc import Callable

from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext as _
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from . import liveness
from .organisers.access import current_organiser, sign_in_redirect

# The largest id of an INTEGER column (PostgreSQL's int4): larger numbers name nothing and overflow a query.
MAX_ID = 2_147_483_647
# Our documents nest three or four levels; anything much deeper is an attack on a recursive parser.
MAX_JSON_DEPTH = 32
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
TOO_DEEP = f"JSON nested more than {MAX_JSON_DEPTH} levels deep is not accepted."


class UnstorableInput(BadRequest):
    """A request holding a value that can't be stored; the description says which and why."""


class UploadTooLarge(RequestEntityTooLarge):
    """A request body over a page's upload limit; the description names the limit."""


# Room for a form's other fields (CSRF token, text) next to its file.
FORM_ALLOWANCE = 64 * 1024


def upload_limit(setting: str, what: str) -> Callable:
    """Decorator: the view takes bodies of up to app.config[setting] bytes (and FORM_ALLOWANCE for the form's
    other fields); `what` names what is limited in the refusal ("Images")."""

    def decorator(view: Callable) -> Callable:
        view.upload_limit = (setting, what)
        return view

    return decorator


def apply_upload_limit():
    """before_request, first: a view's own upload limit, and a clear 413 for a body declared larger.

    Only a signed-in organiser may send a body that large: anyone else's upload is sent to the sign-in page before
    its body is read (a stranger sending a large body slowly would otherwise hold a web worker). A signed-in
    organiser's upload reports progress as it arrives (liveness.ReportingInput), so a slow uplink does not run into
    the web server's worker timeout.
    """
    limit = getattr(current_app.view_functions.get(request.endpoint), "upload_limit", None)
    if limit is None:
        return None
    setting, what = limit
    allowed = current_app.config[setting]
    request.max_content_length = allowed + FORM_ALLOWANCE
    if (request.content_length or 0) > request.max_content_length:
        raise UploadTooLarge(f"That file is too large: {what} may be at most {allowed / (1024 * 1024):.3g} MB.")
    if request.method in ("GET", "HEAD"):
        return None
    if current_organiser() is None:
        return sign_in_redirect()
    request.environ["wsgi.input"] = liveness.ReportingInput(request.environ["wsgi.input"])
    return None


def database_id(raw) -> int | None:
    """The id a form or query value names, or None if it is not a number in the database's range."""
    text = str(raw or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def _unstorable(values) -> bool:
    return any(UNSTORABLE.search(value) for value in values if isinstance(value, str))


def refuse_unstorable_input() -> None:
    """before_request: refuse NUL bytes or lone surrogates anywhere in a page's address, query, form or file names."""
    if request.path.startswith("/api/"):
        return
    texts = [request.path, *(request.view_args or {}).values()]
    texts += [*request.args.keys(), *request.args.values()]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        texts += [*request.form.keys(), *request.form.values()]
        texts += [upload.filename for upload in request.files.values()]
    if _unstorable(texts):
        raise UnstorableInput(_("The request holds a character that can't be stored (a NUL byte or a broken one)."))


class CheckedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing (as a decoding error, hence 400) documents nested too deeply, before any view or
    validator walks them recursively."""

    def loads(self, s, **kwargs):
        """Parse, then measure the depth without recursion."""
        try:
            document = json.loads(s, **kwargs)
        except RecursionError:
            raise ValueError(TOO_DEEP) from None
        pending = [(document, 1)]
        while pending:
            value, depth = pending.pop()
            if depth > MAX_JSON_DEPTH:
                raise ValueError(TOO_DEEP)
            if isinstance(value, dict):
                pending.extend((item, depth + 1) for item in value.values())
            elif isinstance(value, list):
                pending.extend((item, depth + 1) for item in value)
        return document


def init_inputguard(app: Flask) -> None:
    """Install the JSON provider and the request check."""
    app.json_provider_class = CheckedJSONProvider
    app.json = CheckedJSONProvider(app)
    app.before_request(apply_upload_limit)
    app.before_request(refuse_unstorable_input)
