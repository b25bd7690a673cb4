"""The encoding of a text file (CSV, and the text formats sniffed like it): refusing binary
content, UTF-16 / UTF-8 / GB18030 detection (a declared encoding checked against the bytes),
UTF-16 transcoded to UTF-8 as a stream, and blocks decoded with Python's codecs with the bad
bytes located (line number) and worded.

GB18030 by ``iconv`` (the fast path) is in :mod:`.gb18030_iconv`."""

from __future__ import annotations

import codecs
import io
import re
from pathlib import Path

from crossmatch.errors import InputFileError


class RetryWithEncoding(Exception):
    """Raised when an auto-detected UTF-8 file turns out not to be UTF-8 past the first block."""

    def __init__(self, encoding: str):
        super().__init__(encoding)
        self.encoding = encoding


def sniff_binary(path: Path, head: bytes) -> None:
    """Refuse files that are not text, saying what they look like."""
    name = path.name
    if head.startswith(b"PK\x03\x04"):
        raise InputFileError(
            f"{path}: not a CSV text file: it is a zip/xlsx workbook. "
            f"Fix: export it as CSV, or set `format: xlsx` in the source file."
        )
    if utf16_kind(head):
        return
    sample = head[:65536]
    if b"\x00" in sample or (sample and control_bytes(sample) / len(sample) > 0.01):
        raise InputFileError(
            f"{path}: not a CSV text file (binary content in the first bytes). "
            f"Fix: check the file is the right export; re-export {name} as CSV."
        )


_CONTROL = bytes([*range(9), *range(14, 32)])  # control bytes other than \t \n \v \f \r


def control_bytes(data: bytes) -> int:
    """How many bytes of ``data`` are control characters that text does not hold (bytes
    0-8 and 14-31), counted in C (a generator over 64 KB per file cost 10 ms)."""
    return len(data) - len(data.translate(None, _CONTROL))


def utf16_kind(head: bytes) -> str | None:
    """``utf-16-le`` / ``utf-16-be`` when the bytes are UTF-16 (a BOM, or without one the
    zero high bytes of mostly-ASCII text: tabs, digits, line ends), else None."""
    if head.startswith(codecs.BOM_UTF16_LE) and not head.startswith(b"\xff\xfe\x00\x00"):
        return "utf-16-le"
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be"
    sample = head[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    ze, zo = even.count(0) / len(even), odd.count(0) / len(odd)
    if zo > 0.3 and ze < 0.05:
        return "utf-16-le"
    if ze > 0.3 and zo < 0.05:
        return "utf-16-be"
    return None


def detect_encoding(path: Path, head: bytes, declared: str) -> str:
    """The codec for a CSV: BOM, else UTF-8 if the first block decodes, else GB18030.

    UTF-16 (a BOM, or the zero bytes of UTF-16 text) gives ``utf-16-le`` / ``utf-16-be``.

    A GBK/GB18030 file must never load as mojibake: valid UTF-8 Chinese text is practically
    never valid GB18030 text meant otherwise, so 'UTF-8 first' is safe; a declared
    encoding that contradicts the bytes is an error, not a guess."""
    u16 = utf16_kind(head)
    if declared.startswith("utf-16"):
        if u16 is None:
            raise InputFileError(
                f"{path}: declared {declared} but the bytes are not UTF-16. Fix: set "
                f"`encoding: auto` in the source file."
            )
        has_bom16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        return u16 if has_bom16 or declared == "utf-16" else declared
    if u16 is not None:
        if declared != "auto":
            raise InputFileError(
                f"{path}: declared {declared} but the file is {u16.upper()}. Fix: set "
                f"`encoding: auto` (or {u16}) in the source file."
            )
        return u16
    has_bom = head.startswith(codecs.BOM_UTF8)
    utf8_ok = _utf8_prefix_ok(head)
    non_ascii = not head[:65536].isascii()
    if declared == "auto":
        if has_bom:
            return "utf-8-sig"
        if not utf8_ok:
            _refuse_mixed(path, head)
        return "utf-8" if utf8_ok else "gb18030"
    if declared in ("utf-8", "utf-8-sig"):
        if not (utf8_ok or has_bom):
            raise InputFileError(
                f"{path}: declared {declared} but the bytes are not UTF-8 (it looks like "
                f"GB18030/GBK). Fix: set `encoding: auto` (or gb18030) in the source file."
            )
        return "utf-8-sig" if has_bom else "utf-8"
    # gb18030 / gbk declared
    if has_bom or (utf8_ok and non_ascii):
        raise InputFileError(
            f"{path}: declared {declared} but the file is UTF-8"
            f"{' with BOM' if has_bom else ''}; reading it as {declared} would garble every "
            f"Chinese character. Fix: set `encoding: auto` in the source file."
        )
    return "gb18030"  # superset of GBK: GBK lacks some name characters


_CJK = re.compile("[\u3400-\u9fff]")


def _refuse_mixed(path: Path, head: bytes) -> None:
    """A head that is UTF-8 Chinese text up to some line and not UTF-8 from there on is a
    mixed file: say so at that line (read as GB18030 it would fail, or garble, at line 1).
    Two CJK characters of valid UTF-8 first: GB18030 text practically never yields them."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = head[: exc.start].decode("utf-8", errors="replace")
        if len(_CJK.findall(before)) >= 2:
            line = head.count(b"\n", 0, exc.start) + 1
            raise InputFileError(
                f"{path}: mixed encodings: the file starts as UTF-8 but line {line} is not "
                f"UTF-8 ({exc.reason}). Fix: re-export the whole file in one encoding (UTF-8 "
                f"or GB18030)."
            ) from exc


def _utf8_prefix_ok(head: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


DELIMITERS = (",", "\t", ";", "|")
_DELIM_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "|"}


class Utf16ToUtf8(io.RawIOBase):
    """A UTF-16 file read as UTF-8 bytes (streamed, so the block reader splits lines on
    ``\n`` bytes as for any UTF-8 file); ``chunk``: the bytes read from the file at a time."""

    def __init__(self, fh: io.BufferedReader, encoding: str, path: Path, chunk: int):
        self.fh, self.enc, self.path, self.chunk = fh, encoding, path, chunk
        self.dec = codecs.getincrementaldecoder(encoding)("strict")
        self.buf = b""
        self.lines = 1
        self.eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        while (n < 0 or len(self.buf) < n) and not self.eof:
            chunk = self.fh.read(self.chunk)
            self.eof = not chunk
            try:
                text = self.dec.decode(chunk, final=self.eof)
            except UnicodeDecodeError as exc:
                raise InputFileError(
                    f"{self.path}: after line {self.lines}: bytes that are not valid "
                    f"{self.enc} ({exc.reason}; a truncated or damaged file?). Fix: re-export "
                    f"the file (as UTF-8, GB18030 or UTF-16 with its BOM)."
                ) from exc
            self.lines += text.count("\n")
            self.buf += text.encode("utf-8")
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out


def line_of_byte(data: bytes, pos: int, first_line: int) -> int:
    return first_line + data.count(b"\n", 0, pos)


class BlockDecoder:
    """Decodes a file's blocks of whole lines with Python's codecs (C speed). Bad bytes are
    an InputFileError naming the line, except: at the very end of the file (a truncated last
    character: replaced, with a note added to ``notes``), and in a file read as UTF-8 by
    auto-detection whose first block was plain ASCII (RetryWithEncoding gb18030)."""

    def __init__(self, path: Path, declared: str):
        self.path, self.declared = path, declared
        self.head_non_ascii = True  # the first block held non-ASCII bytes
        self.replaced = False  # a truncated last character was replaced by U+FFFD

    def decode(self, data: bytes, enc: str, first_line: int, final: bool, notes: list[str]) -> str:
        try:
            return data.decode(enc)
        except UnicodeDecodeError as exc:
            line = line_of_byte(data, exc.start, first_line)
            if final and exc.start >= len(data.rstrip(b"\r\n")) - 4:
                notes.append(f"the file ends inside a character at line {line} (truncated file?)")
                self.replaced = True
                return data.decode(enc, errors="replace")
            if self.declared == "auto" and enc.startswith("utf-8"):
                if not self.head_non_ascii:
                    raise RetryWithEncoding("gb18030") from exc
                raise InputFileError(
                    f"{self.path}: mixed encodings: the file starts as UTF-8 but line {line} "
                    f"is not UTF-8 ({exc.reason}). Fix: re-export the whole file in one "
                    f"encoding (UTF-8 or GB18030)."
                ) from exc
            raise InputFileError(
                f"{self.path}: line {line}: bytes that are not valid {enc} "
                f"({exc.reason}); the file is in another encoding or damaged. Fix: re-export "
                f"it as UTF-8 or GB18030, or set `encoding:` in the source file."
            ) from exc
