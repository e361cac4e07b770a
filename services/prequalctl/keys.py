"""`prequalctl keys generate` and `keys index-rotate`: fresh keys, printed once, never logged.

`generate`: a sealing key pair (HPKE, hybrid ML-KEM-768 + X25519 by default, `--kem x25519`
for classic X25519) and an index key ring of one root key (`PAN_INDEX_KEYS`,
`PAN_INDEX_ACTIVE_KEY_ID`, prequal.blind_index). The private key is for the credit service only
(`SEALING_PRIVATE_KEYS`); the API gets the public key, the active key id and the index keys
(`--for api` prints only those). A second key pair seals the webhook signing secrets: the API
gets its public key (`WEBHOOK_SEALING_PUBLIC_KEYS`), the webhook dispatcher its private key
(`WEBHOOK_SEALING_PRIVATE_KEYS`, `--for webhooks`). `PAN_ENCRYPTION_KEYS` is no longer
generated: it is the legacy, decrypt-only keyring of rows written before migration 0007.

`reseal` (prequalctl.reseal): seals every data key still under an old key pair to the active
one, so the old pair can be retired.

`index-rotate`: the two phases of an index key rotation, on the ring in the environment
(`PAN_INDEX_KEYS`, `PAN_INDEX_ACTIVE_KEY_ID`, and `PAN_BLIND_INDEX_KEY` as `v0`): `--phase
distribute` appends a new root key and keeps the active id; once every API pod has it,
`--phase activate` makes it active. Then `prequalctl reindex` moves the old rows.

The output is env-style assignments (`-o env`, default, for `.run/env` or `envFrom`) or one
file per setting in a directory (`--output-dir`, for `SECRETS_DIR`), both in the names of
docs/configuration.md.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

from prequal import blind_index, sealing
from prequal.settings import KEY_ID_PATTERN, IndexKeySettings, load_settings
from prequalctl import reseal

# Which private key each process that opens holds; every other process holds none.
OPENS = {
    "credit": ("SEALING_PRIVATE_KEYS",),
    "webhooks": ("WEBHOOK_SEALING_PRIVATE_KEYS",),
}
PRIVATE = tuple(name for names in OPENS.values() for name in names)


def register(commands: Any) -> None:
    group = commands.add_parser("keys", help="Generate sealing key pairs and index keys")
    group.set_defaults(group_parser=group)
    verbs = group.add_subparsers(title="Available Commands", metavar="<command>")
    generate = verbs.add_parser(
        "generate",
        help="Print a new sealing key pair, its key id and an index key ring",
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
        help="api: public keys, active key ids, index keys; credit: the data keys' private "
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
    rotate = verbs.add_parser(
        "index-rotate",
        help="Add an index key (distribute), or make it the active one (activate)",
        description="Reads PAN_INDEX_KEYS, PAN_INDEX_ACTIVE_KEY_ID (and PAN_BLIND_INDEX_KEY, "
        "key id v0) and prints the new PAN_INDEX_KEYS and PAN_INDEX_ACTIVE_KEY_ID.",
    )
    rotate.add_argument("--key-id", required=True, help="id of the new (or activated) key")
    rotate.add_argument(
        "--phase",
        choices=("distribute", "activate"),
        required=True,
        help="distribute: append a new key, the active one stays; activate: make it active",
    )
    rotate.add_argument("-o", "--output", choices=("env", "export"), default="env")
    rotate.set_defaults(handler=_index_rotate)
    reseal.register_verb(verbs)


def generate_keys(key_id: str, kem: sealing.KemName = sealing.DEFAULT_KEM) -> dict[str, str]:
    """Every setting, in the names of docs/configuration.md (the private key among them)."""
    if not KEY_ID_PATTERN.match(key_id):
        raise ValueError(f"key id must match {KEY_ID_PATTERN.pattern}")
    pair = sealing.generate_key_pair(kem)
    webhook_pair = sealing.generate_key_pair(kem)
    return {
        "SEALING_PUBLIC_KEYS": sealing.format_key_list({key_id: pair.public}),
        "SEALING_ACTIVE_KEY_ID": key_id,
        "PAN_INDEX_KEYS": sealing.format_key_list({key_id: new_index_key()}),
        "PAN_INDEX_ACTIVE_KEY_ID": key_id,
        "WEBHOOK_SEALING_PUBLIC_KEYS": sealing.format_key_list({key_id: webhook_pair.public}),
        "WEBHOOK_SEALING_ACTIVE_KEY_ID": key_id,
        "SEALING_PRIVATE_KEYS": sealing.format_key_list({key_id: pair.private}),
        "WEBHOOK_SEALING_PRIVATE_KEYS": sealing.format_key_list({key_id: webhook_pair.private}),
    }


def new_index_key() -> bytes:
    return secrets.token_bytes(blind_index.ROOT_KEY_BYTES)


def rotate_index_keys(
    keys: dict[str, bytes], active: str, key_id: str, phase: str
) -> tuple[dict[str, bytes], str]:
    """(ring, active id) after one phase; keys are only ever added, never replaced."""
    if not KEY_ID_PATTERN.match(key_id) or key_id == blind_index.LEGACY_KEY_ID:
        raise ValueError(f"key id must match {KEY_ID_PATTERN.pattern} and not be v0")
    if phase == "distribute":
        if key_id in keys:
            raise ValueError(f"index key {key_id!r} exists already; it is never replaced")
        return {**keys, key_id: new_index_key()}, active
    if key_id not in keys:
        raise ValueError(f"index key {key_id!r} is not in the ring: distribute it first")
    return dict(keys), key_id


def for_role(keys: dict[str, str], role: str) -> dict[str, str]:
    """What one process may hold: the API never gets a private key, an opener only its own."""
    if role == "api":
        return {k: v for k, v in keys.items() if k not in PRIVATE}
    if role in OPENS:
        return {k: v for k, v in keys.items() if k in OPENS[role]}
    return dict(keys)


def _index_rotate(args: argparse.Namespace) -> int:
    try:
        ring = load_settings(IndexKeySettings).index_key_ring()
        keys, active = rotate_index_keys(
            dict(ring.keys), ring.active_key_id, args.key_id, args.phase
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # v0 stays in PAN_BLIND_INDEX_KEY, where it came from.
    listed = {k: v for k, v in keys.items() if k != blind_index.LEGACY_KEY_ID}
    prefix = "export " if args.output == "export" else ""
    print(f"{prefix}PAN_INDEX_KEYS={shlex.quote(sealing.format_key_list(listed))}")
    print(f"{prefix}PAN_INDEX_ACTIVE_KEY_ID={shlex.quote(active)}")
    return 0


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
