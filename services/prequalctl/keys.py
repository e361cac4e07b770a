"""`prequalctl keys generate`: fresh PAN keys, printed once and never logged.

The output is env-style assignments (`-o env`, default, for `.run/env` or `envFrom`) or one
file per setting in a directory (`--output-dir`, for `SECRETS_DIR`), both in the names of
docs/configuration.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

from prequal.settings import KEY_ID_PATTERN


def register(commands: Any) -> None:
    group = commands.add_parser("keys", help="Generate PAN encryption and blind-index keys")
    group.set_defaults(group_parser=group)
    verbs = group.add_subparsers(title="Available Commands", metavar="<command>")
    generate = verbs.add_parser(
        "generate",
        help="Print a new keyring, active key id and blind-index key",
        description="Generate a 256-bit AES key and a 256-bit HMAC key from the OS's CSPRNG. "
        "Keys go to stdout (or files), never to a log.",
    )
    generate.add_argument("--key-id", default="v1", help="id of the new key (default: %(default)s)")
    generate.add_argument(
        "-o",
        "--output",
        choices=("env", "export"),
        default="env",
        help="env: NAME=value lines; export: `export NAME=value` lines (default: %(default)s)",
    )
    generate.add_argument(
        "--output-dir",
        type=Path,
        help="instead of printing, write one file per setting (mode 0600) for SECRETS_DIR",
    )
    generate.set_defaults(handler=_generate)


def generate_keys(key_id: str) -> dict[str, str]:
    if not KEY_ID_PATTERN.match(key_id):
        raise ValueError(f"key id must match {KEY_ID_PATTERN.pattern}")
    aes_key = base64.b64encode(secrets.token_bytes(32)).decode()
    index_key = base64.b64encode(secrets.token_bytes(32)).decode()
    return {
        "PAN_ENCRYPTION_KEYS": f"{key_id}:{aes_key}",
        "PAN_ACTIVE_KEY_ID": key_id,
        "PAN_BLIND_INDEX_KEY": index_key,
    }


def _generate(args: argparse.Namespace) -> int:
    try:
        keys = generate_keys(args.key_id)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, value in keys.items():
            path = args.output_dir / name.lower()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(value)
        print(f"wrote {', '.join(n.lower() for n in keys)} to {args.output_dir}")
        return 0
    prefix = "export " if args.output == "export" else ""
    for name, value in keys.items():
        print(f"{prefix}{name}={shlex.quote(value)}")
    return 0
