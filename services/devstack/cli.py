"""`devstack up`: the local platform in the foreground, as `make run` runs it."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import types
from pathlib import Path

from devstack.cluster_cli import cluster_main
from devstack.platform import LocalPlatform, PortInUseError, Ports
from devstack.process import ComponentStartError
from devstack.tools import REPO_ROOT, ToolMissingError


class _SignalledError(Exception):
    pass


def _stop(signum: int, frame: types.FrameType | None) -> None:
    raise _SignalledError(signal.Signals(signum).name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the platform and keep it running until Ctrl-C")
    defaults = Ports()
    up.add_argument(
        "--run-dir",
        type=Path,
        default=REPO_ROOT / ".run",
        help="state, logs, kubeconfig and env file (default: .run)",
    )
    up.add_argument("--postgres-port", type=int, default=defaults.postgres)
    up.add_argument("--kafka-port", type=int, default=defaults.kafka)
    up.add_argument("--api-port", type=int, default=defaults.api)
    up.add_argument("--prometheus-port", type=int, default=defaults.prometheus)
    up.add_argument("--hydra-port", type=int, default=defaults.hydra, help="Hydra's public port")
    up.add_argument("--hydra-admin-port", type=int, default=defaults.hydra_admin)
    cluster = sub.add_parser(
        "cluster",
        help="start a real single-node Kubernetes with the charts installed, until Ctrl-C",
    )
    cluster.add_argument(
        "--run-dir",
        type=Path,
        default=REPO_ROOT / ".run" / "cluster",
        help="state and logs of the node (default: .run/cluster); endpoints go to ../cluster.env",
    )
    cluster.add_argument(
        "--node-only",
        action="store_true",
        help="bring up the node and CoreDNS but install neither manifests nor charts",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "cluster":
        return cluster_main(args.run_dir.resolve(), node_only=args.node_only)
    ports = Ports(
        args.postgres_port,
        args.kafka_port,
        args.api_port,
        args.prometheus_port,
        args.hydra_port,
        args.hydra_admin_port,
    )
    platform = LocalPlatform(args.run_dir.resolve(), ports)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    started = time.monotonic()
    try:
        platform.start(progress=lambda line: print(f"==> {line}", flush=True))
        _report(platform, time.monotonic() - started)
        while True:
            time.sleep(1)
            platform.tick()
    except (PortInUseError, ComponentStartError, ToolMissingError) as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    except _SignalledError as why:
        print(f"\n==> {why}: stopping everything", flush=True)
        return 0
    finally:
        platform.stop()
        print("==> stopped", flush=True)


def _report(platform: LocalPlatform, seconds: float) -> None:
    endpoints = platform.endpoints()
    print(f"\nUp in {seconds:.0f}s. Endpoints (also in {platform.env_file}):")
    for key, value in endpoints.items():
        print(f"  {key}={value}")
    print(f"Logs: {platform.log_dir}/, {platform.run_dir}/*/*.log, {platform.run_dir}/kube/logs/")
    print(
        "Tokens (OAuth2 client_credentials; two clients, scopes "
        "`applications:write applications:read`, secrets only in the env file):\n"
        f"  . {platform.env_file} && curl -s $OIDC_TOKEN_URL -d grant_type=client_credentials "
        "-d client_id=$OIDC_CLIENT_ID -d client_secret=$OIDC_CLIENT_SECRET "
        "-d audience=$OIDC_AUDIENCE -d 'scope=applications:write applications:read'"
    )
    print(
        f"/docs: Authorize with OIDC_DOCS_CLIENT_ID and OIDC_DOCS_CLIENT_SECRET from "
        f"{platform.env_file} (a third client; Swagger UI sends its secret as HTTP Basic)."
    )
    print("Try: make demo    kubectl --kubeconfig .run/kubeconfig get lp -A")
    print("Ctrl-C stops everything.", flush=True)
