"""Header lines written by hand, exactly as RFC 5322 and RFC 2047 want them: folded at spaces within 76 characters,
encoded words for anything that is not plain ASCII, quoted phrases, and no value that can start another header.

The campaign builder writes its constant headers once per campaign with these; other mail goes through the standard
library's `EmailMessage` (uscmail/mail/messages.py), which these match.
"""

import re
from base64 import b64encode
from email.headerregistry import Address

# A plain address that needs no quoting in a header (anything else goes through the standard library).
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9.-]+\Z")
MAX_LINE = 76  # RFC 2047's limit for lines holding encoded words; also under RFC 5322's 78
WORD_BYTES = 39  # UTF-8 bytes per encoded word: "=?utf-8?b?" + 52 base64 characters + "?=" = 64 characters


def single_line(value: str) -> str:
    """Collapse all whitespace, line breaks included, so a value can never start a new header."""
    return " ".join(value.split())


def address(name: str, email: str) -> Address:
    """A structured address from a display name and an address, split at the last "@" (not parsed: the standard
    library refuses to parse a non-ASCII local part)."""
    username, _, domain = email.rpartition("@")
    return Address(display_name=name, username=username, domain=domain)


def encoded_words(text: str) -> list[str]:
    """RFC 2047 B-encoded words for `text`, split between characters so that every word stays short."""
    words, chunk, size = [], [], 0
    for character in text:
        length = len(character.encode())
        if size + length > WORD_BYTES:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(character)
        size += length
    words.append("".join(chunk))
    return ["=?utf-8?b?" + b64encode(word.encode()).decode("ascii") + "?=" for word in words]


def fold(field: str, pieces: list[str]) -> str:
    """`Field: piece piece …`, breaking lines before a piece (never inside one) to stay within MAX_LINE."""
    line = f"{field}: {pieces[0]}"
    lines = []
    for piece in pieces[1:]:
        if len(line) + 1 + len(piece) > MAX_LINE:
            lines.append(line)
            line = " " + piece
        else:
            line += " " + piece
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _plain_ascii(text: str) -> bool:
    # "=?" would be read as the start of an encoded word.
    return text.isascii() and text.isprintable() and "=?" not in text


def _space_pieces(text: str) -> list[str]:
    # Runs of spaces stay attached to the next word, so folding reproduces the text and no line is only white space.
    pieces, spaces = [], ""
    for word in text.split(" "):
        if not word:
            spaces += " "
            continue
        pieces.append(spaces + word)
        spaces = ""
    if spaces:
        pieces[-1:] = [(pieces[-1] if pieces else "") + spaces]
    return pieces or [""]


def unstructured_header(field: str, text: str) -> str:
    """A header line for free text (Subject): folded at spaces when ASCII, encoded words otherwise."""
    return fold(field, _space_pieces(text) if _plain_ascii(text) else encoded_words(text))


def quoted(phrase: str) -> str:
    """An RFC 5322 quoted-string."""
    return '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'


def phrase_header(field: str, phrase: str, value: str) -> str:
    """`Field: "phrase" value` (a mailbox or a List-Id): the phrase quoted and folded at its spaces when ASCII,
    encoded words otherwise."""
    if not phrase:
        return f"{field}: {value}\r\n"
    if _plain_ascii(phrase):
        return fold(field, [*_space_pieces(quoted(phrase)), value])
    return fold(field, [*encoded_words(phrase), value])


def mailbox_header(field: str, name: str, address: str) -> str:
    """`Field: "name" <address>`, or just the address when there is no name."""
    return phrase_header(field, name, f"<{address}>") if name else f"{field}: {address}\r\n"


def ascii_domain(address: str) -> str:
    """The domain of an address in its ASCII (IDNA) form, for Message-ID, List-Id and Feedback-ID."""
    domain = address.rpartition("@")[2]
    try:
        return domain if domain.isascii() else domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "uscmail.invalid"
