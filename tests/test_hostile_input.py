"""Property tests: every route, every form field and every API field fed hostile input never gives a 5xx.

The routes come from the app's URL map, the form fields from every WTForms class the app defines, and the API's
fields from its OpenAPI document, so a new route or field is attacked without anyone adding it here. Values: NUL
bytes, lone surrogates (as broken UTF-8 in forms and queries, as \\ud800 escapes in JSON), numbers beyond every
integer type, negative and zero ids, very long text, template and markup syntax, and JSON nested thousands deep.
"""

import json
import re
from urllib.parse import quote

from flask_wtf import FlaskForm
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import PROJECT_DIR, form_fields
from tests.factories import make_organiser

HOSTILE_TEXT = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "99999999999999999999",
    str(2**63),
    str(2**31),
    "-1",
    "0",
    "1e308",
    "x" * 5000,
    "{{ 9 ** 99999 }}{% for a in range(99999999) %}x{% endfor %}",
    "<script>alert(1)</script>",
    "'; DROP TABLE subscribers; --",
    "../../etc/passwd",
    "%00",
    "",
]
HOSTILE_JSON = [*HOSTILE_TEXT, 10**20, -(2**63), 2**64, 1.5e308, -1, 0, True, None, [], {}]
PATH_TEXT = ["%00", "a%00b", "%ED%A0%80", "99999999999999999999", "x" * 2000, "..%2F..", "1"]
PATH_INTS = ["2147483647", "99999", "1", "2", "0"]
# Routes whose answers end the session being tested (signing out, or disabling or resetting the test's own account):
# attacked separately, at the end, so they do not turn every later example into a redirect to the sign-in page.
SESSION_ENDERS = re.compile(r"/logout$|/accounts/<[^>]+>/<any")
SETTINGS = settings(
    max_examples=80,
    deadline=None,
    # No shrinking: the failing request is printed whole, and the suite stays fast.
    phases=[Phase.explicit, Phase.generate],
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def form_field_names() -> list[str]:
    """Every field name of every form the app defines, and every query or form value a view reads directly."""
    source = "\n".join(path.read_text() for path in (PROJECT_DIR / "uscmail").rglob("*.py"))
    names = set(re.findall(r"request\.(?:args|form)\.get(?:list)?\(\s*\"(\w+)\"", source))
    pending = list(FlaskForm.__subclasses__())
    while pending:
        form_class = pending.pop()
        pending.extend(form_class.__subclasses__())
        names.update(name for name, _ in getattr(form_class, "_unbound_fields", None) or [])
        names.update(name for name in vars(form_class) if not name.startswith("_") and hasattr(
            getattr(form_class, name), "field_class"
        ))  # fmt: skip
    return sorted(names - {"csrf_token"})


def page_routes(app) -> list[tuple[str, str]]:
    """(method, rule) for every page (not the API, not static files)."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/static/", "/dev/")):
            continue
        routes += [(method, rule.rule) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return routes


def fill(rule: str, choose) -> str:
    """A path for the rule with a hostile or plausible value in each part; choose(options) picks one."""

    def value(match: re.Match) -> str:
        converter = match.group(1) or ""
        if converter.startswith("int"):
            return choose(PATH_INTS)
        if converter.startswith("any("):
            return choose(re.findall(r"'?([\w-]+)'?", converter[4:-1]))
        return choose(PATH_TEXT)

    return re.sub(r"<(?:([^:>]+(?:\([^)]*\))?):)?[^>]+>", value, rule)


def urlencoded(fields: dict[str, str]) -> str:
    """A form body as a browser would send it, lone surrogates and all (as the broken UTF-8 they would become)."""
    return "&".join(
        f"{quote(name)}={quote(value, encoding='utf-8', errors='surrogatepass')}" for name, value in fields.items()
    )


def assert_no_server_error(response, what: str) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code < 500, f"{what} -> {response.status_code}\n{body[:500]}"
    assert "Traceback" not in body, what


def test_no_page_answers_hostile_input_with_a_server_error(app, db, sign_in_as):
    browser = sign_in_as("admin")
    csrf = form_fields(browser.get("/organisers/lists/new").get_data(as_text=True))["csrf_token"]
    fields = form_field_names()
    routes = page_routes(app)
    assert len(routes) > 60 and len(fields) > 30

    @SETTINGS
    @given(data=st.data())
    def attack(data):
        method, rule = data.draw(st.sampled_from([route for route in routes if not SESSION_ENDERS.search(route[1])]))
        path = fill(rule, lambda options: data.draw(st.sampled_from(options)))
        # A few names at a time: filling every field at once lets a view stop at the first bad one.
        names = data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True))
        values = {name: data.draw(st.sampled_from(HOSTILE_TEXT)) for name in names}
        query = "?" + urlencoded(values)
        if method == "GET":
            response = browser.get(path + query, buffered=True)
        else:
            body = urlencoded({"csrf_token": csrf, **values})
            response = browser.post(path, data=body, content_type="application/x-www-form-urlencoded", buffered=True)
        assert_no_server_error(response, f"{method} {path} {sorted(values)}")

    attack()
    # The routes that end the session, last: on an account that does not exist, then for real.
    for method, rule in [route for route in routes if SESSION_ENDERS.search(route[1])]:
        for choice in (1, 0):
            path = fill(rule, lambda options, choice=choice: options[min(choice, len(options) - 1)])
            response = browser.open(path, method=method, data=urlencoded({"csrf_token": csrf, "name": "\x00"}),
                                    content_type="application/x-www-form-urlencoded")  # fmt: skip
            assert_no_server_error(response, f"{method} {path}")


def api_operations(app, client) -> list[tuple[str, str, list[str]]]:
    """(method, path template, JSON field names) for every API operation in the OpenAPI document."""
    document = client.get("/api/v1/openapi.json").get_json()
    schemas = document.get("components", {}).get("schemas", {})

    def properties(schema: dict) -> list[str]:
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        names = list(schema.get("properties", {}))
        for part in schema.get("allOf", []) + schema.get("oneOf", []) + schema.get("anyOf", []):
            names += properties(part)
        return names

    operations = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            operations.append(
                (method.upper(), "/api/v1" + path.removeprefix("/api/v1"), properties(body.get("schema", {})))
            )
    return operations


def test_no_api_operation_answers_hostile_input_with_a_server_error(app, db, api):
    from uscmail.organisers import api_tokens

    organiser = make_organiser("hostile.api@example.org", "admin")
    db.session.flush()
    raw = api_tokens.create_token(organiser, "hostile", "test")
    db.session.commit()
    operations = api_operations(app, app.test_client())
    assert len(operations) > 30

    @SETTINGS
    @given(data=st.data())
    def attack(data):
        method, template, names = data.draw(st.sampled_from(operations))
        path = re.sub(r"\{[^}]+\}", lambda _: data.draw(st.sampled_from(PATH_INTS + PATH_TEXT)), template)
        if data.draw(st.booleans()) or not names:
            body = "[" * 5000 + "]" * 5000 if data.draw(st.booleans()) else json.dumps({"x": "\x00"})
        else:
            chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
            body = json.dumps({name: data.draw(st.sampled_from(HOSTILE_JSON)) for name in chosen})
        query = "?" + urlencoded({"q": data.draw(st.sampled_from(HOSTILE_TEXT)), "after": "99999999999999999999"})
        response = api(method, path + query, token=raw, data=body, headers={"Content-Type": "application/json"})
        assert_no_server_error(response, f"{method} {path} {body[:200]}")

    attack()
