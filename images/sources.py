"""What the images stage into their build contexts, built here on first use and cached.

Kafka's jars (fetched by `make tools`), Kubernetes' pause.c compiled static, and the static Go
binaries (CoreDNS, Prometheus, Traefik, kube-network-policies) built from the Go module proxy,
some with exact source patches. Each function returns the path of what it made. Stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from workspace import CACHE, HERE, ROOT, TAGS, VERSIONS, BuildError, run_logged


def kafka_libs() -> Path:
    home = CACHE / f"kafka-{VERSIONS['KAFKA_SCALA_VERSION']}-{VERSIONS['KAFKA_VERSION']}"
    if not (home / ".complete").exists():
        raise BuildError(
            f"{home} is incomplete: run `make tools` (it resolves Kafka from Maven Central)"
        )
    return home / "libs"


def go_env() -> dict[str, str]:
    return {
        **os.environ,
        "GOMODCACHE": str(CACHE / "go" / "mod"),
        "GOCACHE": str(CACHE / "go" / "build"),
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }


def module_source(module: str, version: str) -> Path:
    """The module's read-only source in the module cache (`go mod download`, once)."""
    download = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        env=go_env(),
        check=False,
    )
    if download.returncode != 0:
        raise BuildError(f"go mod download {module}@{version} failed: {download.stdout}")
    return Path(json.loads(download.stdout)["Dir"])


def go_build_static(name: str, out: Path, package: str, ldflags: str, env: dict[str, str]) -> None:
    """`go build` of `package` in the current directory's module: static (netgo), stripped."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = ["go", "build", "-trimpath", "-tags", "netgo", "-ldflags", f"-s -w {ldflags}"]
    run_logged(f"{name}-build", [*command, "-o", str(out), package], env=env)


def pause_binary() -> Path:
    """Kubernetes' pause.c, from the k8s.io/kubernetes module `make tools` downloaded, static."""
    version = TAGS["PAUSE_IMAGE"].rsplit(":", 1)[1]
    out = CACHE / "bin" / f"pause-{version}" / "pause"
    if out.exists():
        return out
    source = (
        CACHE
        / "go"
        / "mod"
        / "k8s.io"
        / f"kubernetes@{VERSIONS['K8S_VERSION']}"
        / "build"
        / "pause"
        / "linux"
        / "pause.c"
    )
    if not source.exists():
        raise BuildError(
            f"{source} is missing: run `make tools` (it downloads the k8s.io/kubernetes module)"
        )
    if not shutil.which("gcc"):
        raise BuildError(
            "gcc is missing: apt-get install gcc libc6-dev"
            " (the pause binary is C, linked statically)"
        )
    print(f"==> pause {version} from {source.relative_to(CACHE)}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    run_logged(
        "pause-gcc",
        [
            "gcc",
            "-Os",
            "-Wall",
            "-Werror",
            "-static",
            f"-DVERSION=v{version}",
            "-o",
            str(tmp),
            str(source),
        ],
    )
    subprocess.run(["strip", str(tmp)], check=True)
    tmp.rename(out)
    return out


def go_wrapper_binary(
    name: str, module: str, version: str, main: str, *, ldflags: str, go_mod_extra: str = ""
) -> Path:
    """A static binary from a throwaway module that requires `module@version` and holds `main`
    (our own main.go); rebuilt only when main.go changes. Cached under the toolchain cache."""
    out = CACHE / "bin" / f"{name}-{version}" / name
    stamp = out.parent / ".main.sha256"
    main_hash = hashlib.sha256((main + go_mod_extra).encode()).hexdigest()
    if out.exists() and stamp.exists() and stamp.read_text() == main_hash:
        return out
    print(f"==> {name} {version} from the Go module proxy (minutes the first time)", flush=True)
    src = CACHE / "src" / f"{name}-{version}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    (src / "main.go").write_text(main)
    (src / "go.mod").write_text(
        f"module prequal.dev/images/{name}\n\ngo 1.24.0\n\nrequire {module} {version}\n"
        + go_mod_extra
    )
    env = go_env()
    os.chdir(src)
    try:
        run_logged(f"{name}-tidy", ["go", "mod", "tidy"], env=env)
        go_build_static(name, out, ".", ldflags, env)
    finally:
        os.chdir(ROOT)
    stamp.write_text(main_hash)
    return out


def coredns_binary() -> Path:
    """CoreDNS with the cluster-DNS plugins only (images/coredns/main.go), static."""
    version = TAGS["COREDNS_VERSION"]
    return go_wrapper_binary(
        "coredns",
        "github.com/coredns/coredns",
        version,
        (HERE / "coredns" / "main.go").read_text(),
        ldflags=f"-X github.com/coredns/coredns/coremain.GitCommit={version}",
    )


PROMETHEUS_PLUGINS = '_ "github.com/prometheus/prometheus/plugins" // Register plugins.'
PROMETHEUS_DISCOVERY = ("dns", "file", "http", "kubernetes")


def prometheus_binary() -> Path:
    """Upstream Prometheus (its cmd/prometheus/main.go) with the service discoveries a cluster
    uses instead of all of them: Debian's 2.42 is built without Kubernetes discovery, which
    manifests/monitoring needs. Prometheus 2.x is published as module version v0.x."""
    version = TAGS["PROMETHEUS_VERSION"]
    module_version = "v0." + version.split(".", 1)[1]
    module = "github.com/prometheus/prometheus"
    source = module_source(module, module_version)
    main = (source / "cmd" / "prometheus" / "main.go").read_text()
    # Its own replaces too: main.go uses the klog-gokit API that stands in for k8s.io/klog.
    replaces = re.search(r"(?ms)^replace \(.*?^\)$", (source / "go.mod").read_text())
    if PROMETHEUS_PLUGINS not in main:
        raise BuildError(
            f"{module}@{module_version}: cmd/prometheus/main.go no longer imports plugins"
        )
    imports = "\n\t".join(f'_ "{module}/discovery/{sd}"' for sd in PROMETHEUS_DISCOVERY)
    common = "github.com/prometheus/common/version"
    return go_wrapper_binary(
        "prometheus",
        module,
        module_version,
        main.replace(PROMETHEUS_PLUGINS, imports),
        ldflags=f"-X {common}.Version={version.lstrip('v')} -X {common}.Revision={version}"
        f" -X {common}.Branch=HEAD",
        go_mod_extra="\n" + replaces.group(0) + "\n" if replaces else "",
    )


@dataclass(frozen=True)
class Patch:
    """One exact replacement in a module's file; the build stops if `old` is not there, so a
    new version that moved the code fails here, not with a vague compiler error."""

    path: str
    old: str
    new: str


def patched_module_binary(
    name: str,
    module: str,
    version: str,
    package: str,
    *,
    patches: tuple[Patch, ...] = (),
    files: dict[str, str] | None = None,
    mod_edits: tuple[str, ...] = (),
    ldflags: str = "",
) -> Path:
    """A static binary built in a patched copy of `module@version` (a module with replaces,
    which `go install module@version` refuses); rebuilt only when the changes change."""
    files = files or {}
    out = CACHE / "bin" / f"{name}-{version}" / name
    stamp = out.parent / ".source.sha256"
    changes = json.dumps([[p.path, p.old, p.new] for p in patches] + [files, mod_edits, ldflags])
    source_hash = hashlib.sha256(changes.encode()).hexdigest()
    if out.exists() and stamp.exists() and stamp.read_text() == source_hash:
        return out
    print(f"==> {name} {version} from the Go module proxy (minutes the first time)", flush=True)
    env = go_env()
    src = CACHE / "src" / f"{name}-{version}"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(module_source(module, version), src)
    for path in (src, *src.rglob("*")):
        path.chmod(path.stat().st_mode | 0o200)
    for relative, text in files.items():
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        (src / relative).write_text(text)
    for patch in patches:
        code = (src / patch.path).read_text()
        if patch.old not in code:
            raise BuildError(f"{module}@{version}: {patch.path} changed; revisit its patches")
        (src / patch.path).write_text(code.replace(patch.old, patch.new))
    os.chdir(src)
    try:
        if mod_edits:
            run_logged(f"{name}-mod", ["go", "mod", "edit", *mod_edits], env=env)
        go_build_static(name, out, package, ldflags, env)
    finally:
        os.chdir(ROOT)
    stamp.write_text(source_hash)
    return out


BASIC_AUTH = "pkg/middlewares/auth/basic_auth.go"
DIGEST_AUTH = "pkg/middlewares/auth/digest_auth.go"


def traefik_binary() -> Path:
    """Traefik's own cmd/traefik with three changes: its nested extension module is not served
    (images/traefik/ext.go stands in, empty as upstream's); its fork of go-http-auth is not
    served (upstream v0.4.0 instead, plus images/traefik/check_secret.go for the one function
    the fork adds that the auth middlewares call); and the ACME DNS-challenge
    registry imports 14 provider SDKs the proxy refuses (403), so a DNS challenge is refused at
    run time instead (HTTP and TLS challenges and all routing are unchanged)."""
    version = TAGS["TRAEFIK_VERSION"]
    module = "github.com/traefik/traefik/v3"
    acme = "pkg/provider/acme/provider.go"
    return patched_module_binary(
        "traefik",
        module,
        version,
        "./cmd/traefik",
        files={
            "pkg/config/dynamic/ext/go.mod": (
                "module github.com/traefik/traefik/dynamic/ext\n\ngo 1.24\n"
            ),
            "pkg/config/dynamic/ext/ext.go": (HERE / "traefik" / "ext.go").read_text(),
            "pkg/middlewares/auth/check_secret.go": (
                HERE / "traefik" / "check_secret.go"
            ).read_text(),
        },
        patches=(
            # go-http-auth v0.4.0 has neither CheckSecret (images/traefik/check_secret.go stands
            # in) nor RequireAuthStale; its CheckAuth never reports a stale nonce, so the branch
            # that would call it is never taken and a plain challenge is the same answer.
            Patch(
                BASIC_AUTH,
                "checkSecret:       goauth.CheckSecret,",
                "checkSecret:       checkSecret,",
            ),
            Patch(DIGEST_AUTH, "d.auth.RequireAuthStale(rw, req)", "d.auth.RequireAuth(rw, req)"),
            Patch(acme, '\t"github.com/go-acme/lego/v5/providers/dns"\n', ""),
            Patch(
                acme,
                "provider, err = dns.NewDNSChallengeProviderByName(p.DNSChallenge.Provider)",
                'provider, err = nil, fmt.Errorf("DNS challenge provider %q is not built in'
                ' (its SDK is not on the Go module proxy)", p.DNSChallenge.Provider)',
            ),
        ),
        mod_edits=(
            "-dropreplace=github.com/abbot/go-http-auth",
            "-require=github.com/abbot/go-http-auth@v0.4.0",
        ),
        ldflags=f"-X {module}/pkg/version.Version={version}",
    )


KNP_QUEUE = """\tqueue := &expr.Queue{Num: uint16(c.config.QueueID)}
\tif c.config.FailOpen {
\t\tqueue.Flag = expr.QueueFlagBypass
\t}
"""


def network_policies_binary() -> Path:
    """kube-network-policies (kind's policy agent) with one change: it hands new connections to
    userspace with the nftables `queue` expression, which this machine's kernel lacks
    (`nft add rule ... queue num 100`: "No such file or directory"); xt_NFQUEUE is there
    (iptables' `-j NFQUEUE` works), so the same rules end in the xtables NFQUEUE target run by
    nft_compat instead (images/network-policies/nfqueue_target.go)."""
    version = TAGS["NETWORK_POLICIES_VERSION"]
    controller = "pkg/networkpolicy/controller.go"
    return patched_module_binary(
        "kube-network-policies",
        "sigs.k8s.io/kube-network-policies",
        version,
        "./cmd",
        files={
            "pkg/networkpolicy/nfqueue_target.go": (
                HERE / "network-policies" / "nfqueue_target.go"
            ).read_text()
        },
        # Both queue rules (postrouting, and the DNS workaround's prerouting).
        patches=(
            Patch(
                controller,
                KNP_QUEUE,
                "\tqueue := nfqueueTarget(c.config.QueueID, c.config.FailOpen)\n",
            ),
        ),
    )
