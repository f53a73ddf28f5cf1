"""The building blocks every part of the OpenAPI document uses: error answers, references, content maps and the
closed object schema. The parts (openapi_subscribers.py, openapi_campaigns.py, openapi_events.py) build on these;
openapi.py puts them together."""

ERRORS = {
    400: "The request does not have the documented shape: malformed JSON, a wrong type, a missing or unknown field "
    "or query parameter, a value outside its enum or range.",
    401: "No API token, or one that is unknown, revoked, or whose organiser is disabled.",
    403: "The token's organiser lacks the role this needs (viewer < editor < admin).",
    404: "No such subscriber or list.",
    409: "The address is on the suppression list (erased, complained or hard-bounced) and can't be subscribed.",
    415: "The body is not JSON (send Content-Type: application/json).",
    422: "Well-formed, but a value is refused: an invalid address or name, an unknown list slug, an archived list "
    "to join, a blank or over-long consent note.",
    429: "Too many requests from this network.",
}


def ref(name: str) -> dict:
    """A $ref to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict) -> dict:
    """An application/json content map."""
    return {"application/json": {"schema": schema}}


def answer(description: str, schema: dict | None = None, **extra) -> dict:
    """A response object, with a JSON body if schema is given."""
    response = {"description": description, **extra}
    if schema is not None:
        response["content"] = json_content(schema)
    return response


def errors(*codes: int, descriptions: dict[int, str] | None = None) -> dict:
    """Error responses for these statuses, each with {"error": message}; `descriptions` replaces ERRORS' wording."""
    wording = {**ERRORS, **(descriptions or {})}
    result = {}
    for code in codes:
        extra = {}
        if code == 401:
            extra["headers"] = {
                "WWW-Authenticate": {"description": 'Bearer realm="uscmail"', "schema": {"type": "string"}}
            }
        result[str(code)] = answer(wording[code], ref("Error"), **extra)
    return result


def body(schema: dict, required: bool = True) -> dict:
    """A JSON request body."""
    return {"required": required, "content": json_content(schema)}


def operation(operation_id: str, summary: str, responses: dict, **extra) -> dict:
    """An operation object."""
    return {"operationId": operation_id, "summary": summary, "responses": responses, **extra}


TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
SLUG = {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"}
PUBLIC = {"security": [], "tags": ["public"]}


def closed(properties: dict, required: list[str] | None = None, **extra) -> dict:
    """An object schema with exactly these properties (all required unless listed)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
        **extra,
    }
