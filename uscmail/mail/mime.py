"""MIME body parts written as bytes: quoted-printable text parts whose constant lines are encoded once, and a base64
calendar attachment. The campaign builder joins them with its headers into a message."""

import binascii
import re
from base64 import b64encode
from collections.abc import Callable

TEXT_HEADERS = b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
HTML_HEADERS = b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'


CALENDAR_FILENAME = "invite.ics"


def calendar_part(calendar: str) -> bytes:
    """An iCalendar attachment as a MIME part (headers and base64 body, lines of 76)."""
    encoded = b64encode(calendar.encode()).decode("ascii")
    lines = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    return (
        'Content-Type: text/calendar; method="PUBLISH"; charset="utf-8"\r\n'
        f'Content-Disposition: attachment; filename="{CALENDAR_FILENAME}"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{lines}"
    ).encode()


class QuotedPrintablePart:
    """One quoted-printable text part: lines without personal values are encoded once (QP encodes each line on its
    own, so the result is the same as encoding the whole), the others per message."""

    def __init__(self, content: str, personal: re.Pattern):
        lines = content.replace("\r\n", "\n").replace("\r", "\n").removesuffix("\n").split("\n")
        self.chunks: list[bytes | str] = []
        constant: list[str] = []
        for line in lines:
            if personal.search(line):
                if constant:
                    self.chunks.append(binascii.b2a_qp("".join(constant).encode(), istext=True))
                    constant = []
                self.chunks.append(line + "\r\n")
            else:
                constant.append(line + "\r\n")
        if constant:
            self.chunks.append(binascii.b2a_qp("".join(constant).encode(), istext=True))

    def encode(self, fill: Callable[[str], str]) -> list[bytes]:
        """The part's body, with `fill` applied to each line that carries personal values."""
        return [
            chunk if chunk.__class__ is bytes else binascii.b2a_qp(fill(chunk).encode(), istext=True)
            for chunk in self.chunks
        ]


def one_line_endings(text: str) -> str:
    """Every line break (CR, LF or CRLF) as CRLF, as MIME bodies on the wire want."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
