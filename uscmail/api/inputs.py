"""Reading API input. 400: the request does not match the documented shape (type, missing or unknown field, enum
value, number out of range). 422: it does, but a value is refused (invalid address or name, unknown list)."""

import enum
from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest

from ..models import MailingList
from ..subscribers import lists as list_services
from ..validation import breaks_line
from .bearer import ApiError

# Ids are 32-bit integer columns; larger numbers are refused before they reach the database.
MAX_ID = 2**31 - 1


def bad_request(message: str) -> ApiError:
    """A 400: the request does not have the documented shape."""
    return ApiError(400, message)


def unprocessable(message: str) -> ApiError:
    """A 422: well-formed, but a value is refused."""
    return ApiError(422, message)


def json_body(allowed: set[str], required: set[str] = frozenset(), empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object with only `allowed` keys and every `required` one.

    415 unless the body is JSON; 400 if it is malformed, not an object, or has missing or unknown keys.
    With empty_ok, a request without a body reads as {}.
    """
    if empty_ok and not request.get_data(cache=True):
        return {}
    if not request.is_json:
        raise ApiError(415, "Send a JSON body with Content-Type: application/json.")
    try:
        payload = request.get_json()
    except BadRequest:
        raise bad_request("The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise bad_request("The body must be a JSON object.")
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise bad_request(f"Unknown field(s): {', '.join(unknown)}. Accepted: {', '.join(sorted(allowed))}.")
    missing = sorted(required - set(payload))
    if missing:
        raise bad_request(f"Missing field(s): {', '.join(missing)}.")
    return payload


def string_field(payload: dict, key: str, nullable: bool = False) -> str | None:
    """payload[key] as a string (or None where nullable); 400 for any other type."""
    value = payload.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise bad_request(f"'{key}' must be a string{' or null' if nullable else ''}.")
    return value


def printable(value: str, what: str, max_length: int) -> str:
    """The value trimmed; 422 if it holds control characters or is blank or too long."""
    value = value.strip()
    if not value or len(value) > max_length:
        raise unprocessable(f"{what} must be 1 to {max_length} characters.")
    if breaks_line(value):
        raise unprocessable(f"{what} can't contain line breaks or control characters.")
    return value


def slug_list(payload: dict, key: str) -> list[str]:
    """payload[key] as a non-empty list of strings, duplicates dropped; 400 otherwise."""
    value = payload.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise bad_request(f"'{key}' must be a non-empty list of list slugs.")
    return list(dict.fromkeys(value))


def enum_field(payload: dict, key: str, enum_class: type[enum.Enum]) -> enum.Enum:
    """payload[key] as a member of enum_class; 400 otherwise."""
    value = payload.get(key)
    choices = [member.value for member in enum_class]
    if value not in choices:
        raise bad_request(f"'{key}' must be one of: {', '.join(choices)}.")
    return enum_class(value)


def lists_by_slug(slugs: list[str], joining: bool) -> list[MailingList]:
    """The lists named by slug; 422 for an unknown slug, or, when joining, an archived list.

    Slugs are matched against the (few) lists in memory, so no user string reaches the query.
    """
    available = {mailing_list.slug: mailing_list for mailing_list in list_services.all_lists()}
    unknown = [slug for slug in slugs if slug not in available]
    if unknown:
        raise unprocessable("Unknown list(s): " + ", ".join(repr(slug[:64]) for slug in unknown[:5]) + ".")
    chosen = [available[slug] for slug in slugs]
    archived = [mailing_list.slug for mailing_list in chosen if mailing_list.archived]
    if joining and archived:
        raise unprocessable(f"Archived lists can't be joined: {', '.join(archived)}.")
    return chosen


def query_args(allowed: set[str]) -> dict[str, str]:
    """The query string as a dict; 400 for unknown or repeated parameters."""
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise bad_request(f"Unknown query parameter(s): {', '.join(unknown)}. Accepted: {', '.join(sorted(allowed))}.")
    repeated = sorted(key for key in request.args if len(request.args.getlist(key)) > 1)
    if repeated:
        raise bad_request(f"Give each query parameter once: {', '.join(repeated)}.")
    return dict(request.args)


def int_arg(args: dict[str, str], key: str, default: int | None, minimum: int, maximum: int) -> int | None:
    """An integer query parameter within [minimum, maximum]; 400 otherwise."""
    raw = args.get(key)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or not minimum <= int(raw) <= maximum:
        raise bad_request(f"'{key}' must be a whole number from {minimum} to {maximum}.")
    return int(raw)
