"""The one sandbox for every organiser template: campaign bodies, reminder subjects and bodies, hold and resume notices.

Jinja's immutable sandbox keeps templates away from Python's internals; this module also keeps them from using up
the machine. Every render is bounded:

- no value a template builds is larger than MAX_VALUE characters (strings, and the contents of lists and dicts),
  nor any whole number longer than MAX_NUMBER_BITS bits: `*`, `**`, `+`, `~`, padding, `join` and `replace` are
  refused *before* they would make a larger one;
- all loops of a render together repeat at most MAX_LOOP_ITERATIONS times, and a render produces at most
  MAX_OUTPUT characters;
- a render stops after TEMPLATE_RENDER_SECONDS of wall-clock time. The deadline is checked at every loop step,
  call, filter, operator, attribute and output, so it works in any thread or process (a signal would not: SIGALRM
  reaches only the main thread, and Celery's own time limits use signals already), and a render overruns it by one
  bounded step at most.

Whatever goes wrong while a template is filled in becomes TemplateRefused (an InvalidInput) whose message an
organiser can act on; pages answer it with a 4xx, the send path records it on the delivery or the campaign.
"""

import contextlib
import functools
import math
import time
from contextvars import ContextVar
from dataclasses import dataclass

from flask import current_app, has_app_context
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.visitor import NodeTransformer

from .validation import InvalidInput

MAX_VALUE = 100_000
MAX_NUMBER_BITS = 4_096
MAX_LOOP_ITERATIONS = 10_000
MAX_OUTPUT = 1_000_000
DEFAULT_RENDER_SECONDS = 1.0

# Statements that pull in other templates or hand rendered output back to expressions.
REFUSED_STATEMENTS = {
    nodes.Extends: "{% extends %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from … import %}",
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.FilterBlock: "{% filter %}",
    nodes.AssignBlock: "{% set %}…{% endset %}",
}
# Filters a template may use; the others can build huge values (batch, center, indent, slice, wordwrap…) or reach
# attributes by name (attr). Each is wrapped so that it checks the deadline and the sizes of what it takes and gives.
FILTERS = frozenset(
    {
        "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "filesizeformat", "first", "float",
        "forceescape", "groupby", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
        "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string",
        "striptags", "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode", "wordcount",
    }
)  # fmt: skip
# Methods and attributes by type; no other attribute of these types may be used (format, translate, encode and
# int.to_bytes, among others, could build huge values or bypass the checks below).
STRING_ATTRIBUTES = frozenset(
    {
        "capitalize", "casefold", "center", "count", "endswith", "find", "index", "isalnum", "isalpha", "isascii",
        "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust", "lower",
        "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition",
        "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill",
    }
)  # fmt: skip
NUMBER_ATTRIBUTES = frozenset({"real", "imag", "numerator", "denominator", "bit_length", "conjugate", "is_integer"})
SEQUENCE_ATTRIBUTES = frozenset({"count", "index"})
MAPPING_ATTRIBUTES = frozenset({"get", "items", "keys", "values"})


class TemplateRefused(InvalidInput):
    """The organiser's template can't be used; the message says why in words an organiser can act on."""


TOO_LARGE = (
    "The template would make a value over {limit:,} characters (or a number over {bits:,} bits) with `{what}`; "
    "templates are for short personal touches, so keep values small."
)


def _too_large(what: str) -> TemplateRefused:
    return TemplateRefused(TOO_LARGE.format(limit=MAX_VALUE, bits=MAX_NUMBER_BITS, what=what))


@dataclass
class _Budget:
    """What is left to one render: time, loop steps and output characters."""

    deadline: float
    iterations: int = MAX_LOOP_ITERATIONS
    output: int = MAX_OUTPUT

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateRefused(
                "The template takes too long to fill in (the limit is a second or so); simplify its loops and "
                "calculations."
            )

    def step(self) -> None:
        self.tick()
        self.iterations -= 1
        if self.iterations < 0:
            raise TemplateRefused(
                f"The template's loops repeat more than {MAX_LOOP_ITERATIONS:,} times in all; loop over less."
            )

    def spend(self, characters: int) -> None:
        self.output -= characters
        if self.output < 0:
            raise TemplateRefused(f"The template makes a mail over {MAX_OUTPUT:,} characters long; shorten it.")


_budget: ContextVar[_Budget] = ContextVar("template_budget")
_outer_deadline: ContextVar[float | None] = ContextVar("template_outer_deadline", default=None)


def _current() -> _Budget:
    budget = _budget.get(None)
    if budget is None:
        raise RuntimeError("organiser templates must be rendered through templating.render()")
    return budget


def spend_output(characters: int) -> None:
    """Count characters a render produced outside its output stream (values collected by a finalize hook)."""
    _current().spend(characters)


def render_seconds() -> float:
    """The wall-clock limit of one render (TEMPLATE_RENDER_SECONDS)."""
    if has_app_context():
        return float(current_app.config.get("TEMPLATE_RENDER_SECONDS", DEFAULT_RENDER_SECONDS))
    return DEFAULT_RENDER_SECONDS


@contextlib.contextmanager
def time_limit(seconds: float):
    """Bound the renders inside the block together (a save check tries several sample values)."""
    reset = _outer_deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _outer_deadline.reset(reset)


def size(value, limit: int = MAX_VALUE) -> int:
    """About how many characters a value would print as: strings by length, whole numbers by digits, lists and
    dicts by their contents (at least one per item). Stops counting once past `limit`."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int):
        return value.bit_length() // 3 + 1
    if isinstance(value, list | tuple | set | frozenset | dict):
        total = len(value)
        items = value.items() if isinstance(value, dict) else value
        for item in items:
            if total > limit:
                break
            total += size(item, limit - total)
        return total
    return 1


def _bits(value) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def check_value(value, what: str):
    """The value, or TemplateRefused if it is larger than MAX_VALUE characters (`what` made it)."""
    if size(value) > MAX_VALUE:
        raise _too_large(what)
    return value


def _check_binop(operator: str, left, right) -> None:
    """Refuse, before it runs, an operation whose result would be too large."""
    numbers = isinstance(left, int) and isinstance(right, int)
    if operator == "%" and isinstance(left, str):
        raise SecurityError("%-formatting of text is not available")
    if operator == "**" and numbers and right > 0 and abs(left) > 1 and math.log2(abs(left)) * right > MAX_NUMBER_BITS:
        raise _too_large("**")
    if operator == "*":
        if numbers and _bits(left) + _bits(right) > MAX_NUMBER_BITS:
            raise _too_large("*")
        for sequence, count in ((left, right), (right, left)):
            repeated = isinstance(sequence, str | list | tuple) and isinstance(count, int) and count > 0
            if repeated and size(sequence) * count > MAX_VALUE:
                raise _too_large("*")
    if operator in ("+", "-"):
        if numbers and max(_bits(left), _bits(right)) + 1 > MAX_NUMBER_BITS:
            raise _too_large(operator)
        if isinstance(left, str | list | tuple) and size(left) + size(right) > MAX_VALUE:
            raise _too_large(operator)


def _int_argument(args, kwargs, position: int, name: str, default: int) -> int:
    value = args[position] if len(args) > position else kwargs.get(name, default)
    return value if isinstance(value, int) else default


def _check_string_method(text: str, name: str, args: tuple, kwargs: dict) -> tuple:
    """Refuse a string method call whose result would be too large; returns the arguments to call it with."""
    if name in ("center", "ljust", "rjust", "zfill") and _int_argument(args, kwargs, 0, "width", 0) > MAX_VALUE:
        raise _too_large(name)
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = _int_argument(args, kwargs, 2, "count", -1)
        found = text.count(args[0]) if args[0] else len(text) + 1
        found = found if count < 0 else min(found, count)
        if len(text) + found * max(0, len(args[1]) - len(args[0])) > MAX_VALUE:
            raise _too_large(name)
    if name == "join" and args:
        items = list(args[0])  # a generator can be read only once: join what was measured
        if size(items) + len(text) * max(0, len(items) - 1) > MAX_VALUE:
            raise _too_large(name)
        args = (items, *args[1:])
    return args


def _guarded_filter(name: str, function):
    """The filter, checking the deadline and the sizes of its arguments and of its result."""
    passes_context = getattr(function, "jinja_pass_arg", None) is not None

    @functools.wraps(function)  # keeps jinja_pass_arg, so Jinja still passes the context or environment
    def guarded(*args, **kwargs):
        _current().tick()
        head, args = (args[:1], args[1:]) if passes_context else ((), args)
        for value in (*args, *kwargs.values()):
            check_value(value, f"|{name}")
        if name == "join" and args:
            items = list(args[0])  # a generator can be read only once: join what was measured
            separator = args[1] if len(args) > 1 else kwargs.get("d", "")
            if size(items) + size(separator) * max(0, len(items) - 1) > MAX_VALUE:
                raise _too_large("|join")
            args = (items, *args[1:])
        if name == "replace" and len(args) >= 3:
            count = args[3] if len(args) > 3 else kwargs.get("count")
            _check_string_method(str(args[0]), "replace", (str(args[1]), str(args[2]), count or -1), {})
        if name == "sum" and not isinstance(args[2] if len(args) > 2 else kwargs.get("start", 0), int | float):
            raise TemplateRefused("`|sum` adds up numbers only.")
        return check_value(function(*head, *args, **kwargs), f"|{name}")

    return guarded


class _Guards(NodeTransformer):
    """Rewrites a checked template so that loops, `~` and list and dict literals pass through the sandbox's checks."""

    def visit_For(self, node: nodes.For) -> nodes.For:  # noqa: N802 - Jinja's visitor names
        node = self.generic_visit(node)
        node.iter = _guard_call("guard_loop", node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Expr:  # noqa: N802 - Jinja's visitor names
        node = self.generic_visit(node)
        return _guard_call("guard_concat", nodes.List(node.nodes, lineno=node.lineno))

    def visit_List(self, node: nodes.List) -> nodes.Expr:  # noqa: N802 - Jinja's visitor names
        return _guard_call("guard_value", self.generic_visit(node))

    def visit_Dict(self, node: nodes.Dict) -> nodes.Expr:  # noqa: N802 - Jinja's visitor names
        return _guard_call("guard_value", self.generic_visit(node))

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Expr:  # noqa: N802 - Jinja's visitor names
        node = self.generic_visit(node)
        return node if node.ctx != "load" else _guard_call("guard_value", node)


def _guard_call(guard: str, argument: nodes.Expr) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(guard), [argument], [], None, None, lineno=argument.lineno)


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with no globals, a short list of filters and attributes, and the limits above.

    Render its templates with `render()`, which sets up the limits of the render.
    """

    intercepted_binops = frozenset({"+", "-", "*", "**", "%"})

    def __init__(self, autoescape: bool = False, finalize=None):
        super().__init__(autoescape=autoescape, undefined=StrictUndefined, finalize=finalize, auto_reload=False)
        self.globals.clear()
        self.filters = {name: _guarded_filter(name, self.filters[name]) for name in FILTERS}

    def is_safe_attribute(self, obj, attr: str, value) -> bool:
        """The sandbox's rules, and for strings, numbers, lists and dicts only the attributes listed above."""
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, str):
            return attr in STRING_ATTRIBUTES
        if isinstance(obj, int | float):
            return attr in NUMBER_ATTRIBUTES
        if isinstance(obj, list | tuple):
            return attr in SEQUENCE_ATTRIBUTES
        if isinstance(obj, dict):
            return attr in MAPPING_ATTRIBUTES
        return True

    def wrap_str_format(self, value):
        """No `str.format`: format specifications pad to any width (`{:>999999999}`)."""
        return None

    def getattr(self, obj, attribute: str):
        """Look up an attribute, within the deadline."""
        _current().tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        """Look up an item, within the deadline."""
        _current().tick()
        return super().getitem(obj, argument)

    def call_binop(self, context, operator: str, left, right):
        """Refuse arithmetic that would make huge values, and %-formatting of text."""
        _current().tick()
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(self, context, obj, /, *args, **kwargs):
        """Call a function or method, within the deadline, refusing arguments or string methods that are too big."""
        _current().tick()
        if getattr(obj, "__self__", None) is self:
            return obj(*args)  # one of the guards below, which check their own arguments
        for key, value in (*enumerate(args), *kwargs.items()):
            if not str(key).startswith("_"):  # _loop_vars and _block_vars are Jinja's own
                check_value(value, "a function call")
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            args = _check_string_method(owner, getattr(obj, "__name__", ""), args, kwargs)
        return super().call(context, obj, *args, **kwargs)

    def guard_loop(self, iterable):
        """A loop's items, each counted against the render's loop steps."""
        budget = _current()
        for item in iterable:
            budget.step()
            yield item

    def guard_concat(self, items: list):
        """`a ~ b ~ …`, refused if the result would be too large."""
        _current().tick()
        if sum(size(item) for item in items) > MAX_VALUE:
            raise _too_large("~")
        return markup_join(items) if self.autoescape else str_join(items)

    def guard_value(self, value):
        """A list, tuple or dict written in the template, refused if too large."""
        _current().tick()
        return check_value(value, "a list or dict")


def parse_checked(environment: Sandbox, source: str, variables: frozenset[str], available: str, check_node=None):
    """Parse a template and refuse what the sandbox must not run: the statements above, recursive loops, names
    other than `variables`, and underscored attributes. `check_node(node, parent)` may refuse more. Returns the
    tree, or raises TemplateRefused naming the first problem in the source (the message ends with `available`)."""
    try:
        tree = environment.parse(source)
    except TemplateSyntaxError as exc:
        message = (exc.message or "").rstrip(".")
        raise TemplateRefused(f"The template has a mistake on line {exc.lineno}: {message}.") from None
    except RecursionError:
        raise TemplateRefused("The template nests brackets or blocks too deeply.") from None
    for node in tree.find_all((nodes.Filter, nodes.Test)):  # before find_undeclared_variables, which compiles
        kind, known = ("filter", environment.filters) if isinstance(node, nodes.Filter) else ("test", environment.tests)
        if node.name not in known:
            raise TemplateRefused(f"The template uses the {kind} `{node.name}`, which is not available.")
    undeclared = meta.find_undeclared_variables(tree) - variables
    for node, parent in _with_parents(tree):
        words = next((words for kind, words in REFUSED_STATEMENTS.items() if isinstance(node, kind)), None)
        if words or (isinstance(node, nodes.For) and node.recursive):
            words = words or "{% for … recursive %}"
            raise TemplateRefused(f"The template uses `{words}`, which is not available here. {available}")
        name = node.name if isinstance(node, nodes.Name) and node.ctx == "load" else None
        if name == "self" or name in undeclared:
            raise refuse_name(name, available)
        attribute = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attribute = node.arg.value
        if attribute and attribute.startswith("_"):
            raise refuse_name(attribute, available)
        if check_node is not None:
            check_node(node, parent)
    return tree


def refuse_name(name: str, available: str) -> TemplateRefused:
    """The refusal of a name the template may not use."""
    return TemplateRefused(f"The template uses `{name}`, which is not available. {available}")


def with_parents(tree: nodes.Node) -> dict[int, nodes.Node | None]:
    """Each node's parent, by the node's id()."""
    return {id(node): parent for node, parent in _with_parents(tree)}


def _with_parents(node: nodes.Node, parent: nodes.Node | None = None):
    # Children first: `a.b.c` yields a, then b, then c, so the first problem found is the first in the source.
    for child in node.iter_child_nodes():
        yield from _with_parents(child, node)
    yield node, parent


def compile_checked(environment: Sandbox, tree: nodes.Template):
    """The template for a tree that `parse_checked` accepted, with the loop, `~` and literal checks built in."""
    tree = _Guards().visit(tree)
    tree.set_environment(environment)
    try:
        return environment.from_string(tree)
    except TemplateSyntaxError as exc:  # e.g. a filter used with the wrong arguments
        message = (exc.message or "").rstrip(".")
        raise TemplateRefused(f"The template has a mistake on line {exc.lineno}: {message}.") from None


def render(template, values: dict) -> str:
    """Fill in a template compiled by `compile_checked` within the limits; TemplateRefused saying why on failure."""
    deadline = time.monotonic() + render_seconds()
    outer = _outer_deadline.get()
    budget = _Budget(deadline=min(deadline, outer) if outer is not None else deadline)
    reset = _budget.set(budget)
    try:
        chunks = []
        for chunk in template.generate(values):
            budget.spend(len(chunk))
            budget.tick()
            chunks.append(chunk)
        return "".join(chunks)
    except TemplateRefused:
        raise
    except SecurityError as exc:
        raise TemplateRefused(f"The template does something that is not allowed: {exc}.") from None
    except TemplateError as exc:
        raise TemplateRefused(f"The template could not be filled in: {exc.message}.") from None
    except RecursionError:
        raise TemplateRefused("The template nests too deeply to be filled in.") from None
    except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as exc:
        # Not the exception's arguments for a missing key: they may hold a subscriber's name.
        detail = "a key or position that is not there" if isinstance(exc, LookupError) else str(exc)
        raise TemplateRefused(f"The template could not be filled in: {detail}.") from None
    finally:
        _budget.reset(reset)
