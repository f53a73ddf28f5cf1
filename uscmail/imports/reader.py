"""Reading an uploaded CSV file as a stream: UTF-8 (with or without a BOM), `,` or `;`, quoted newlines, capped lines.

Nothing here holds more than one line (at most MAX_LINE_BYTES bytes) in memory at a time.
"""

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE_BYTES = 64 * 1024
EMAIL_HEADERS = {"email", "e-mail", "email address"}
NAME_HEADERS = {"name", "full name"}


class ImportFileError(ValueError):
    """The file as a whole cannot be imported; the message says why and what to do."""


class OversizedLine(ValueError):
    """One line of the file is longer than MAX_LINE_BYTES; the rest of that line was skipped."""


class CountingReader(io.RawIOBase):
    """A binary stream that counts the bytes read through it, for a progress bar."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)


class DecodedLines:
    """Iterate over a binary stream's lines decoded as UTF-8, one line at a time.

    A line over the cap raises OversizedLine (the rest of it is skipped); a line that is not UTF-8 raises
    ImportFileError naming the line. An iterator object, not a generator, so the csv reader can go on after an
    exception. Splitting bytes at b"\n" is safe in UTF-8: that byte never occurs inside a multi-byte character.
    """

    def __init__(self, binary: BinaryIO, cap: int = MAX_LINE_BYTES):
        self.binary = binary
        self.cap = cap
        self.line_number = 0

    def __iter__(self) -> "DecodedLines":
        return self

    def __next__(self) -> str:
        line = self.binary.readline(self.cap + 1)
        if not line:
            raise StopIteration
        self.line_number += 1
        if len(line) > self.cap:
            while line and not line.endswith(b"\n"):
                line = self.binary.readline(self.cap)
            raise OversizedLine(f"line {self.line_number} is longer than {self.cap // 1024} KB")
        if self.line_number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"The file is not UTF-8 text: line {self.line_number} has a byte that is not UTF-8 "
                f"(0x{line[exc.start]:02x}, byte {exc.start + 1} of the line), as in a file saved as Latin-1. "
                "Save it as 'CSV UTF-8' from the spreadsheet program and try again; nothing was imported."
            ) from None


@dataclass(frozen=True)
class Record:
    """One data row: its number as a spreadsheet shows it (the header is row 1), and the email and name cells."""

    row: int
    email: str | None
    name: str | None
    problem: str | None = None


def _pick_delimiter(header_line: str) -> tuple[str, list[str]]:
    """The delimiter (`,` or `;`) that makes the header contain an email column, and the header cells."""
    for delimiter in (",", ";"):
        try:
            cells = next(csv.reader([header_line], delimiter=delimiter), [])
        except csv.Error:  # a lone CR or a NUL inside the header: not a header row
            cells = []
        if any(cell.strip().lower() in EMAIL_HEADERS for cell in cells):
            return delimiter, [cell.strip().lower() for cell in cells]
    shown = header_line.strip()[:80]
    raise ImportFileError(
        "The first row must be a header with an 'email' column (and optionally 'name'), separated by commas or "
        f"semicolons; it reads: {shown!r}"
    )


def read_records(binary: BinaryIO) -> tuple[CountingReader, Iterator[Record]]:
    """Open a CSV file: check the header now, then yield its records one by one.

    Raises ImportFileError for a missing header or an encoding error, including one met halfway through the file.
    """
    counter = CountingReader(binary)
    lines = DecodedLines(io.BufferedReader(counter, buffer_size=64 * 1024))
    try:
        header_line = next(lines, "")
    except OversizedLine:
        raise ImportFileError("The header row is far too long; is this a CSV file?") from None
    if not header_line.strip():
        raise ImportFileError("The file is empty; it needs a header row with an 'email' column.")
    delimiter, header = _pick_delimiter(header_line)
    email_index = next(i for i, cell in enumerate(header) if cell in EMAIL_HEADERS)
    name_index = next((i for i, cell in enumerate(header) if cell in NAME_HEADERS), None)
    return counter, _records(lines, delimiter, email_index, name_index)


def _records(lines: DecodedLines, delimiter: str, email_index: int, name_index: int | None) -> Iterator[Record]:
    reader = csv.reader(lines, delimiter=delimiter, strict=False)
    row = 1
    while True:
        row += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (OversizedLine, csv.Error) as exc:
            yield Record(row, None, None, f"unreadable row: {exc}")
            continue
        if not any(cell.strip() for cell in cells):
            continue  # a blank row still counts in the numbering, as in a spreadsheet
        email = cells[email_index] if email_index < len(cells) else ""
        name = cells[name_index] if name_index is not None and name_index < len(cells) else None
        yield Record(row, email, name)
