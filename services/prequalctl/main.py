"""Entry point of `prequalctl`: `prequalctl <noun> <verb> [flags]`, as kubectl and helm read.

Each noun is a module with `register(subparsers)` that adds its parser and sets `handler` on
its verbs; adding a command group is one module and one line in COMMAND_GROUPS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from prequalctl import audit, db, demo, dlq, erase, keys, policy, reindex, webhooks

COMMAND_GROUPS = (db, keys, reindex, dlq, demo, policy, audit, erase, webhooks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prequalctl",
        description="Operate the loan prequalification platform.",
        epilog="Use `prequalctl <command> --help` for more about a command.",
    )
    commands = parser.add_subparsers(title="Available Commands", metavar="<command>")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        # A noun without a verb prints that noun's help, like `kubectl config`.
        (getattr(args, "group_parser", None) or parser).print_help(sys.stderr)
        return 2
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
