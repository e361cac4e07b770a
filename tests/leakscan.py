"""The leak scan: plaintext PANs and the tests' personal values in any file, in any encoding.

Issue 14 asks for zero plaintext PAN or personal field in a `pg_dump`, a dump of every topic
and every log line after the whole suite. `tests/lanes.sh` runs this module over the run's
basetemp after both lanes: the session fixtures wrote a `pg_dump` of every database and a dump
of every topic into `<basetemp>/.../leak-scan/` (tests/leakdump.py) before stopping their
servers, and every process, broker, database, pod and lane log is a file under the basetemp
already. Every regular file there is read, so the raw data files of PostgreSQL, Kafka and the
node lane's pods are scanned too.

What counts (docs/data-protection.md):
- a PAN-shaped token (`AAAAA9999A`, not inside a longer word); the stored mask `XXXXXX234F`
  is not one, nor the notation `AAAAA9999A` itself;
- a personal value of the test data generator (tests/applications.py): its marker in a name
  or e-mail address, its phone prefix, its date of birth.

Each is looked for as text (JSON-escaped text included: the values are ASCII), and in text
files (fewer than 1 % NUL bytes) also inside hex runs (how `pg_dump` writes bytea) and base64
runs (standard and URL-safe alphabets, any alignment), each run decoded once. Binary stores
(PostgreSQL pages and WAL, Kafka segments) get the text search only: their records are decoded
through the dumps, and decoding every run of their bytes would cost minutes. A finding names
the file, the byte offset and line, the kind of field and the encoding, never the value.

usage: python -m tests.leakscan BASETEMP
"""

from __future__ import annotations

import base64
import binascii
import bisect
import fnmatch
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.applications import DATE_OF_BIRTH, MARKER, PHONE_PREFIX

KINDS = {
    "pan": "PAN",
    "marker": "name or e-mail (generator marker)",
    "phone": "phone number (generator prefix)",
    "dob": "date of birth (generator date)",
}
HEX_RUN = re.compile(rb"[0-9a-fA-F]{20,}")
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{16,}")
# A dump step that could not dump leaves this note instead: the scan cannot vouch for it.
FAILED_DUMP_SUFFIX = ".dump-failed"
_CHUNK = 32 << 20
_OVERLAP = 64 << 10

# The format's own notation (API docs, error messages): PAN-shaped, no one's PAN.
_PAN_NOTATION = b"AAAAA9999A"

# Files a test writes a value into on purpose, as (fnmatch pattern of the path under the
# basetemp, kind, why). Keep each as narrow as the reason.
EXCLUDED: list[tuple[str, str, str]] = [
    (
        "*test_authorize_in_swagger_ui_*/chromium/*/Cache/Cache_Data/*",
        "PAN",
        "the Swagger UI test's browser caches /openapi.json, whose documented request example "
        "is the test PAN ABCDE1234F (tests/integration/submission/test_api_docs_browser.py)",
    ),
]


@dataclass(frozen=True)
class Finding:
    path: Path
    offset: int
    line: int
    kind: str
    encoding: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} (byte {self.offset}): {self.kind}, {self.encoding}"


def matches(blob: bytes) -> Iterator[tuple[int, str, str, bytes]]:
    """(offset in `blob`, kind, encoding, the matched bytes) of every plaintext value in `blob`:
    as text, then inside each hex run and base64 run (the offset is the run's)."""
    yield from _plain(blob, "text", [])
    if blob.count(0) > len(blob) // 100:
        return  # a binary store (see the module's docstring): its dump is decoded instead
    hex_runs: list[tuple[int, bytes]] = []
    for run in HEX_RUN.finditer(blob):
        for start in (0, 1):
            text = run.group()[start:]
            hex_runs.append((run.start(), binascii.unhexlify(text[: len(text) // 2 * 2])))
    yield from _decoded(hex_runs, "hex")
    base64_runs: list[tuple[int, bytes]] = []
    for run in BASE64_RUN.finditer(blob):
        standard = run.group().replace(b"-", b"+").replace(b"_", b"/")
        for start in range(4):
            text = standard[start:]
            left = len(text) % 4
            text = text[:-1] if left == 1 else text + b"=" * ((4 - left) % 4)
            base64_runs.append((run.start(), base64.b64decode(text)))
    yield from _decoded(base64_runs, "base64")


def _decoded(runs: list[tuple[int, bytes]], encoding: str) -> Iterator[tuple[int, str, str, bytes]]:
    """Scans every decoded run in one pass (a NUL between runs: no match spans two); a match is
    reported at the offset of its run in the file."""
    if not runs:
        return
    starts: list[int] = []
    joined = bytearray()
    for _, decoded in runs:
        starts.append(len(joined))
        joined += decoded + b"\0"
    for found, kind, _, value in _plain(bytes(joined), encoding, []):
        run = bisect.bisect_right(starts, found) - 1
        yield runs[run][0], kind, encoding, value


def _classes() -> bytes:
    table = bytearray(b"." * 256)
    for byte in range(256):
        if 65 <= byte <= 90:
            table[byte] = ord("A")
        elif 97 <= byte <= 122:
            table[byte] = ord("a")
        elif 48 <= byte <= 57:
            table[byte] = ord("9")
    return bytes(table)


# Every byte as its class (A upper, a lower, 9 digit, . other): a PAN is the literal
# `AAAAA9999A` there, which bytes.find locates far faster than a regular expression.
_CLASSES = _classes()
_PAN_CLASSES = b"AAAAA9999A"
_WORD = b"Aa9"
_MARKER = MARKER.lower().encode()
_PHONE = PHONE_PREFIX.encode()
_DOB = DATE_OF_BIRTH.encode()


def _find_all(haystack: bytes, needle: bytes) -> Iterator[int]:
    at = haystack.find(needle)
    while at >= 0:
        yield at
        at = haystack.find(needle, at + 1)


def _bounded(classes: bytes, start: int, end: int, word: bytes) -> bool:
    """No `word` class byte right before `start` or at `end`."""
    before = classes[start - 1 : start]
    after = classes[end : end + 1]
    return not (before and before in word) and not (after and after in word)


def _plain(blob: bytes, encoding: str, _: list[int]) -> Iterator[tuple[int, str, str, bytes]]:
    classes = blob.translate(_CLASSES)

    def at(found: int) -> int:
        return found

    for found in _find_all(classes, _PAN_CLASSES):
        if (
            _bounded(classes, found, found + 10, _WORD)
            and blob[found : found + 10] != _PAN_NOTATION
        ):
            yield at(found), KINDS["pan"], encoding, blob[found : found + 10]
    for found in _find_all(blob.lower(), _MARKER):
        yield at(found), KINDS["marker"], encoding, blob[found : found + len(_MARKER)]
    for found in _find_all(blob, _PHONE):
        end = found + len(_PHONE) + 4
        if classes[found + len(_PHONE) : end] == b"9999" and _bounded(classes, found, end, b"9"):
            yield at(found), KINDS["phone"], encoding, blob[found:end]
    for found in _find_all(blob, _DOB):
        yield at(found), KINDS["dob"], encoding, blob[found : found + len(_DOB)]


def scan_file(path: Path, shown_as: Path) -> list[Finding]:
    found: dict[tuple[int, str, str], Finding] = {}
    lines_before = 0
    position = 0
    with path.open("rb") as file:
        carry = b""
        while chunk := file.read(_CHUNK):
            blob = carry + chunk
            base = position - len(carry)
            for at, kind, encoding, _ in matches(blob):
                key = (base + at, kind, encoding)
                if key not in found:
                    line = lines_before + blob.count(b"\n", 0, at) + 1
                    found[key] = Finding(shown_as, base + at, line, kind, encoding)
            carry = blob[-_OVERLAP:]
            lines_before += blob.count(b"\n", 0, len(blob) - len(carry))
            position += len(chunk)
    return sorted(found.values(), key=lambda f: f.offset)


def _excluded(relative: Path, kind: str) -> bool:
    return any(fnmatch.fnmatch(str(relative), glob) and kind == k for glob, k, _ in EXCLUDED)


def scan_tree(root: Path) -> tuple[list[Finding], list[Path], int]:
    """(findings, dump notes of dumps that failed, files read) under `root`."""
    findings: list[Finding] = []
    failed: list[Path] = []
    files = 0
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        relative = path.relative_to(root)
        if path.name.endswith(FAILED_DUMP_SUFFIX):
            failed.append(relative)
        files += 1
        findings += [f for f in scan_file(path, relative) if not _excluded(relative, f.kind)]
    return findings, failed, files


def report(root: Path, findings: list[Finding], failed: list[Path], files: int) -> str:
    lines = [f"leak scan: {files} files under {root}"]
    for note in failed:
        lines.append(f"  a dump failed, so its data went unscanned: {note}")
    by_file: dict[Path, list[Finding]] = {}
    for finding in findings:
        by_file.setdefault(finding.path, []).append(finding)
    for path, found in by_file.items():
        lines.append(f"  {path}: {len(found)} plaintext value(s)")
        lines += [f"    {f}" for f in found[:10]]
        if len(found) > 10:
            lines.append(f"    ... and {len(found) - 10} more")
    verdict = "FAILED" if findings or failed else "clean"
    lines.append(f"leak scan {verdict}: {len(findings)} plaintext value(s) in {len(by_file)} files")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    root = Path(argv[0])
    findings, failed, files = scan_tree(root)
    print(report(root, findings, failed, files), flush=True)
    return 1 if findings or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
