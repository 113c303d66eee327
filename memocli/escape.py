"""The one place untrusted text is made safe for each output format.

File names, EXIF fields and rows merged from other caches are untrusted: they may hold
control characters (terminal escape sequences), Rich markup, spreadsheet formulas or bytes
that are not UTF-8. Every writer of memo output passes them through one function here:

* :func:`as_text`: valid Unicode (undecodable bytes of a file name shown as ``\\xff``);
* :func:`for_terminal` / :func:`terminal_message` / :func:`rich_cell`: tables and messages,
  every control character escaped (``\\n``, ``\\x1b``), never read as Rich markup;
* :func:`for_csv` / :func:`csv_writer`: the OWASP rule against formula injection;
* :func:`for_json` / :func:`dumps_json`: valid JSON (finite numbers, text, no raw C1
  controls);
* :func:`for_html`: escaped, and shown as in a terminal.

The rules are documented in ``docs/broken-files.md``.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
from collections.abc import Iterable
from typing import IO, Any

#: OWASP (CSV injection): a cell starting with one of these is read as a formula by
#: spreadsheets, so it gets a leading ``'`` (also the full-width forms some of them accept).
FORMULA_STARTS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
# Characters json.dumps leaves raw that a terminal may obey: DEL, C1 controls (0x9b is CSI),
# bidirectional overrides, line and paragraph separators.
_JSON_RAW_CONTROLS = re.compile("[\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def as_text(value: str | bytes) -> str:
    """``value`` as valid Unicode: bytes that are not UTF-8 become ``\\xNN``.

    File names that are not UTF-8 reach Python as lone surrogates (``surrogateescape``);
    they, and raw ``bytes``, are shown by their bytes instead of failing to encode.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape" if _only_escaped(value) else
                           "backslashreplace")
        return raw.decode("utf-8", "backslashreplace")


def _only_escaped(text: str) -> bool:
    """True when every surrogate in ``text`` is one ``surrogateescape`` made (U+DC80-DCFF)."""
    return all("\udc80" <= c <= "\udcff" for c in text if "\ud800" <= c <= "\udfff")


def _escape_unprintable(text: str, keep: str = "") -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def for_terminal(value: Any) -> str:
    """One line fit for a terminal: every control character escaped (``new\\nline.jpg``)."""
    return _escape_unprintable(as_text(value if isinstance(value, (str, bytes)) else str(value)))


def terminal_message(message: str) -> str:
    """A message fit for a terminal: like :func:`for_terminal`, but its line breaks kept."""
    return "\n".join(for_terminal(line) for line in as_text(message).split("\n"))


def rich_cell(value: Any):
    """A Rich table cell holding ``value`` as plain text, never as markup."""
    from rich.text import Text

    return Text(for_terminal(value))


def for_csv(value: Any) -> Any:
    """A CSV cell: text with the OWASP formula rule applied; numbers as they are; None empty.

    A text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a
    leading ``'`` so spreadsheets show it instead of running it.
    """
    if value is None:
        return ""
    if isinstance(value, (str, bytes)):
        text = as_text(value)
        return "'" + text if text[:1] in FORMULA_STARTS else text
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


class _SafeWriter:
    """``csv.writer`` whose every cell goes through :func:`for_csv`.

    A row with a carriage return in a cell is written with every cell quoted: Python's
    writer quotes only the characters of its line terminator (``\\n`` here), and a bare
    ``\\r`` outside quotes ends the line for CSV readers.
    """

    def __init__(self, out: IO[str], **kwargs: Any):
        self._writer = csv.writer(out, **kwargs)
        self._quoting_all = csv.writer(out, quoting=csv.QUOTE_ALL, **kwargs)

    def writerow(self, row: Iterable[Any]) -> None:
        cells = [for_csv(v) for v in row]
        bare_cr = any(isinstance(c, str) and "\r" in c for c in cells)
        (self._quoting_all if bare_cr else self._writer).writerow(cells)

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(out: IO[str], **kwargs: Any) -> _SafeWriter:
    """A CSV writer for memo output: use it for every CSV memo writes."""
    return _SafeWriter(out, lineterminator="\n", **kwargs)


def for_json(value: Any) -> Any:
    """``value`` (nested dicts, lists, scalars) with valid text and finite numbers only.

    Non-finite floats become ``null`` (JSON has no NaN or Infinity); bytes become text.
    """
    if isinstance(value, dict):
        return {as_text(str(k)): for_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [for_json(v) for v in value]
    if isinstance(value, (str, bytes)):
        return as_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps_json(value: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` of :func:`for_json` ``(value)``: strict JSON, safe on a terminal."""
    text = json.dumps(for_json(value), ensure_ascii=False, allow_nan=False, **kwargs)
    return _JSON_RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def for_html(value: Any) -> str:
    """Text for an HTML page: shown as in a terminal, then HTML-escaped (quotes too)."""
    return html.escape(for_terminal(value), quote=True)
