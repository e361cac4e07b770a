"""`prequalctl keys generate`: fresh keys, printed once and never logged.

A sealing key pair (HPKE, hybrid ML-KEM-768 + X25519 by default, `--kem x25519` for classic
X25519) and the blind-index key. The private key is for the credit service only
(`SEALING_PRIVATE_KEYS`); the API gets the public key, the active key id and the blind-index
key (`--for api` prints only those). A second key pair seals the webhook signing secrets: the
API gets its public key (`WEBHOOK_SEALING_PUBLIC_KEYS`), the webhook dispatcher its private key
(`WEBHOOK_SEALING_PRIVATE_KEYS`, `--for webhooks`). `PAN_ENCRYPTION_KEYS` is no longer
generated: it is the legacy, decrypt-only keyring of rows written before migration 0007.

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

from prequal import sealing
from prequal.settings import KEY_ID_PATTERN

# Which private key each process that opens holds; every other process holds none.
OPENS = {
    "credit": ("SEALING_PRIVATE_KEYS",),
    "webhooks": ("WEBHOOK_SEALING_PRIVATE_KEYS",),
}
PRIVATE = tuple(name for names in OPENS.values() for name in names)


def register(commands: Any) -> None:
    group = commands.add_parser("keys", help="Generate sealing key pairs and blind-index keys")
    group.set_defaults(group_parser=group)
    verbs = group.add_subparsers(title="Available Commands", metavar="<command>")
    generate = verbs.add_parser(
        "generate",
        help="Print a new sealing key pair, its key id and a blind-index key",
        description="Generate an HPKE sealing key pair and a 256-bit HMAC key from the OS's "
        "CSPRNG. Keys go to stdout (or files), never to a log.",
    )
    generate.add_argument("--key-id", default="v1", help="id of the new key (default: %(default)s)")
    generate.add_argument(
        "--kem",
        choices=("mlkem768-x25519", "x25519"),
        default=sealing.DEFAULT_KEM,
        help="HPKE KEM of the sealing key pair (default: %(default)s, post-quantum hybrid)",
    )
    generate.add_argument(
        "--for",
        dest="role",
        choices=("all", "api", "credit", "webhooks"),
        default="all",
        help="api: public keys, active key ids, blind-index key; credit: the data keys' private "
        "key; webhooks: the webhook secrets' private key (the dispatcher's); all: every one "
        "(default: %(default)s)",
    )
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


def generate_keys(key_id: str, kem: sealing.KemName = sealing.DEFAULT_KEM) -> dict[str, str]:
    """Every setting, in the names of docs/configuration.md (the private key among them)."""
    if not KEY_ID_PATTERN.match(key_id):
        raise ValueError(f"key id must match {KEY_ID_PATTERN.pattern}")
    pair = sealing.generate_key_pair(kem)
    webhook_pair = sealing.generate_key_pair(kem)
    index_key = base64.b64encode(secrets.token_bytes(32)).decode()
    return {
        "SEALING_PUBLIC_KEYS": sealing.format_key_list({key_id: pair.public}),
        "SEALING_ACTIVE_KEY_ID": key_id,
        "PAN_BLIND_INDEX_KEY": index_key,
        "WEBHOOK_SEALING_PUBLIC_KEYS": sealing.format_key_list({key_id: webhook_pair.public}),
        "WEBHOOK_SEALING_ACTIVE_KEY_ID": key_id,
        "SEALING_PRIVATE_KEYS": sealing.format_key_list({key_id: pair.private}),
        "WEBHOOK_SEALING_PRIVATE_KEYS": sealing.format_key_list({key_id: webhook_pair.private}),
    }


def for_role(keys: dict[str, str], role: str) -> dict[str, str]:
    """What one process may hold: the API never gets a private key, an opener only its own."""
    if role == "api":
        return {k: v for k, v in keys.items() if k not in PRIVATE}
    if role in OPENS:
        return {k: v for k, v in keys.items() if k in OPENS[role]}
    return dict(keys)


def _generate(args: argparse.Namespace) -> int:
    try:
        keys = for_role(generate_keys(args.key_id, args.kem), args.role)
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
