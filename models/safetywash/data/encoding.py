"""Bytes to text: the one place a file's encoding is applied, with located decoding errors.

A byte that is not text in the file's encoding (a spreadsheet export in Latin-1 or Windows
code page 1252 read as UTF-8, say) fails naming the file, the line, the byte and the column
of the CSV field holding it, instead of a bare :class:`UnicodeDecodeError`.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

from safetywash.data.errors import StudyValidationError

_ESCAPED = re.compile("[\udc80-\udcff]")


def decode_text(
    path: Path,
    encoding: str = "utf-8",
    *,
    delimiter: str = ",",
    error: type[StudyValidationError] = StudyValidationError,
) -> str:
    """The text of a file, or an error naming the line, byte and column that do not decode.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    encoding : str
        Its encoding; for UTF-8 a leading byte-order mark is dropped.
    delimiter : str
        Field separator, used to name the column of an undecodable byte.
    error : type
        The exception class.

    Returns
    -------
    str
    """
    source = str(path)
    try:
        codec = codecs.lookup(encoding).name
    except (LookupError, TypeError) as err:
        raise error(f"unknown text encoding {encoding!r}", source=source) from err
    raw = path.read_bytes()
    if codec == "utf-8":
        raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        label = "UTF-8" if codec == "utf-8" else repr(encoding)
        raise error(
            f"not valid {label} text (byte 0x{raw[err.start]:02x}); re-save the file as "
            "UTF-8 or pass its encoding (e.g. encoding='latin-1' or 'cp1252')",
            source=source,
            line=line,
            column=_undecodable_column(raw, codec, delimiter),
        ) from err
    return text.removeprefix("\ufeff")


def _undecodable_column(raw: bytes, codec: str, delimiter: str) -> str | None:
    """Header name of the field holding the first undecodable byte (None in the header)."""
    text = raw.decode(codec, errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = None
    try:
        for row in reader:
            hit = next((j for j, cell in enumerate(row) if _ESCAPED.search(cell)), None)
            if header is None:
                if hit is not None:
                    return None
                header = [h.strip() for h in row]
            elif hit is not None:
                return header[hit] if hit < len(header) else None
    except csv.Error:
        return None
    return None
