#!/usr/bin/env python3
"""`make images`: every container image the platform and the local cluster need, built here.

No image registry is reachable from the project's machines, so nothing is pulled:

- base images are Debian package sets (mmdebstrap, Debian's default mirror) imported into Docker;
- the platform's image comes from the root Dockerfile on the Python bases, with pip reaching
  PyPI through the machine's CA bundle, handed in as a BuildKit secret (never in a layer);
- PostgreSQL and Kafka are images/<name>/Dockerfile on their Debian bases (Kafka's jars are the
  ones `make tools` fetched from Maven Central);
- the pause image is Kubernetes' own pause.c (from the k8s.io/kubernetes module); CoreDNS,
  Prometheus and Traefik are static binaries built from the Go module proxy; all four on an
  empty base.

Every image carries a content hash of its inputs (label dev.prequal.inputs): when each of its
tags already has that hash, it is not rebuilt, so a second run with nothing changed takes seconds.
The result, one entry per image, goes to .run/images.json for the node's image loader.
Stdlib only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "images"
CACHE = Path(os.environ.get("PREQUAL_CACHE", Path.home() / ".cache" / "loan-prequal"))
LOGS = CACHE / "logs"
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
INPUTS_LABEL = "dev.prequal.inputs"
# Raise to rebuild every image from scratch (e.g. to take Debian's security updates).
REVISION = "1"
# Build time of each input hash, so a cached run still reports what a build costs.
TIMES = CACHE / "images" / "build-seconds.json"
PROJECT_BUDGET_BYTES = 350 * 1000 * 1000
# Images built only when named in PREQUAL_EXTRA_IMAGES (comma-separated): the node's Ingress
# controller (`traefik`), whose cold build from the Go module proxy may not fit the cold CI
# budget (docs/cluster.md); without it the node's endpoints use the NodePorts.
EXTRA_IMAGES = set(os.environ.get("PREQUAL_EXTRA_IMAGES", "").split(","))


def read_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (toolchain/versions.env, images/images.env)."""
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


VERSIONS = read_env(ROOT / "toolchain" / "versions.env")
TAGS = read_env(HERE / "images.env")
SUITE = TAGS["DEBIAN_SUITE"]


class BuildError(Exception):
    """A build step failed; the message says what to do."""


# --- inputs and hashes ------------------------------------------------------------------------


def files_under(path: Path) -> Iterator[Path]:
    # What .dockerignore keeps out of the project's build context is not an input either.
    skipped = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "devstack"}
    if path.is_file():
        yield path
        return
    for child in sorted(path.rglob("*")):
        parts = set(child.relative_to(path).parts)
        if (
            child.is_file()
            and not parts & skipped
            and not child.name.endswith(".pyc")
            and ".egg-info" not in str(child)
        ):
            yield child


def content_hash(*parts: object, paths: Iterable[Path] = ()) -> str:
    digest = hashlib.sha256(json.dumps([REVISION, *parts], sort_keys=True, default=str).encode())
    for top in paths:
        for file in files_under(top):
            digest.update(str(file.relative_to(top.parent)).encode() + b"\0")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


# --- docker -----------------------------------------------------------------------------------


def docker(*args: str, capture: bool = True) -> str:
    result = subprocess.run([DOCKER, *args], capture_output=capture, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"docker {' '.join(args[:2])} failed: {(result.stderr or '').strip()}")
    return result.stdout if capture else ""


def label_of(tag: str) -> str | None:
    result = subprocess.run(
        [
            DOCKER,
            "image",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{INPUTS_LABEL}"}}}}',
            tag,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def run_logged(
    what: str, command: list[str], *, stdin: int | None = None, env: dict[str, str] | None = None
) -> None:
    """Runs a long step with its output in a log, printing a heartbeat with its latest line."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"image-{what}.log"
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=stdin, env=env
        )
        while process.poll() is None:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                last = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
                print(
                    f"    ... {what} ({time.monotonic() - started:.0f}s): {last[0][:100]}",
                    flush=True,
                )
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise BuildError(
            f"{what} failed after {time.monotonic() - started:.0f}s:\n{tail}\nfull log: {log}"
        )


# --- what is built ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """A Debian package set, imported as an image with no Dockerfile."""

    name: str
    packages: tuple[str, ...]
    # Paths removed from the root filesystem before it is imported (what a package's own
    # set-up left that the image does not want).
    remove: tuple[str, ...] = ()
    # Directories made before any package is installed (what a maintainer script expects).
    make_dirs: tuple[str, ...] = ()

    @property
    def inputs(self) -> str:
        extra = [self.make_dirs] if self.make_dirs else []
        return content_hash(SUITE, self.packages, self.remove, MMDEBSTRAP_OPTIONS, *extra)

    @property
    def tag(self) -> str:
        return f"prequal.local/base-{self.name}:{SUITE}-{self.inputs[:12]}"


# Documentation, manual pages and translations are left out of every base; each package's
# copyright file stays. usr-is-merged instead of usrmerge keeps perl out.
MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=force-unsafe-io",  # no fsync per file: the tree becomes a tar anyway
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)

BASES = {
    base.name: base
    for base in (
        Base("python", ("python3", "ca-certificates")),
        Base("python-build", ("python3", "python3-venv", "ca-certificates")),
        # postgresql-common creates a cluster "main" on installation; the image makes its own.
        Base(
            "postgres",
            (f"postgresql-{VERSIONS['POSTGRES_MAJOR']}",),
            (
                f"/var/lib/postgresql/{VERSIONS['POSTGRES_MAJOR']}",
                f"/etc/postgresql/{VERSIONS['POSTGRES_MAJOR']}",
            ),
        ),
        # openjdk's postinst links its manual page into /usr/share/man/man1, which the
        # documentation filter leaves out: without the directory the postinst fails.
        Base("kafka", ("openjdk-17-jre-headless",), make_dirs=("/usr/share/man/man1",)),
    )
}


@dataclass
class Image:
    """One `docker build`: its tags, its context and what its inputs are."""

    name: str
    tags: tuple[str, ...]
    context: Path
    dockerfile: Path
    inputs: tuple[Path, ...]
    bases: dict[str, str] = field(default_factory=dict)  # build arg -> base name
    target: str | None = None
    # Files added to a staged copy of the context: destination -> a function that makes the
    # source (a binary built on first use, Kafka's jars) and returns its path.
    staged: dict[str, Callable[[], Path]] = field(default_factory=dict)

    def inputs_hash(self, staged: dict[str, Path]) -> str:
        base_tags = {arg: BASES[name].tag for arg, name in self.bases.items()}
        return content_hash(
            self.tags, self.target, base_tags, paths=(*self.inputs, *staged.values())
        )


def images() -> list[Image]:
    project_inputs = tuple(
        ROOT / p
        for p in (
            "Dockerfile",
            ".dockerignore",
            "requirements.lock",
            "pyproject.toml",
            "README.md",
            "images/runtime-requirements.py",
            "services",
            "operator",
        )
    )
    python = {"PYTHON_IMAGE": "python", "PYTHON_BUILD_IMAGE": "python-build"}

    def own(name: str, base: str | None, **staged: Callable[[], Path]) -> Image:
        folder = HERE / name
        return Image(
            name,
            (TAGS[f"{name.upper().replace('-', '_')}_IMAGE"],),
            folder,
            folder / "Dockerfile",
            (folder,),
            {"BASE_IMAGE": base} if base else {},
            staged=staged,
        )

    return [
        Image(
            "prequal",
            (TAGS["PREQUAL_IMAGE"], TAGS["PREQUAL_OPERATOR_DEV_IMAGE"]),
            ROOT,
            ROOT / "Dockerfile",
            project_inputs,
            python,
            target="runtime",
        ),
        Image(
            "prequal-dev",
            (TAGS["PREQUAL_DEV_IMAGE"],),
            ROOT,
            ROOT / "Dockerfile",
            project_inputs,
            python,
            target="dev",
        ),
        own("postgres", "postgres"),
        own("kafka", "kafka", libs=kafka_libs),
        own("prometheus", None, prometheus=prometheus_binary),
        own("pause", None, pause=pause_binary),
        own("coredns", None, coredns=coredns_binary),
        own("network-policies", None, **{"kube-network-policies": network_policies_binary}),
    ] + [
        image
        for image in (own("traefik", None, traefik=traefik_binary),)
        if image.name in EXTRA_IMAGES
    ]


# --- staged inputs ------------------------------------------------------------------------------


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
        out.parent.mkdir(parents=True, exist_ok=True)
        run_logged(
            f"{name}-build",
            [
                "go",
                "build",
                "-trimpath",
                "-tags",
                "netgo",
                "-ldflags",
                f"-s -w {ldflags}",
                "-o",
                str(out),
                ".",
            ],
            env=env,
        )
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
    download = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{module_version}"],
        capture_output=True,
        text=True,
        env=go_env(),
        check=False,
    )
    if download.returncode != 0:
        raise BuildError(f"go mod download {module}@{module_version} failed: {download.stdout}")
    source = Path(json.loads(download.stdout)["Dir"])
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
    download = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if download.returncode != 0:
        raise BuildError(f"go mod download {module}@{version} failed: {download.stdout}")
    src = CACHE / "src" / f"{name}-{version}"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(json.loads(download.stdout)["Dir"], src)
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
        out.parent.mkdir(parents=True, exist_ok=True)
        run_logged(
            f"{name}-build",
            [
                "go",
                "build",
                "-trimpath",
                "-tags",
                "netgo",
                "-ldflags",
                f"-s -w {ldflags}",
                "-o",
                str(out),
                package,
            ],
            env=env,
        )
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


# --- building ---------------------------------------------------------------------------------


def ensure_base(base: Base, times: dict[str, float]) -> dict[str, object]:
    """The base image, imported unless its tag exists; what it is, for .run/images.json."""
    if label_of(base.tag) is None:
        build_base(base, times)
    return {
        "tag": base.tag,
        "packages": list(base.packages),
        "size_bytes": size_of(base.tag),
        "build_seconds": times.get(base.inputs),
    }


def build_base(base: Base, times: dict[str, float]) -> None:
    if not shutil.which("mmdebstrap"):
        raise BuildError(
            "mmdebstrap is missing: run `make tools` (it installs Debian's mmdebstrap)"
        )
    print(
        f"==> base {base.name}: Debian {SUITE} minbase + {', '.join(base.packages)} (mmdebstrap)",
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prequal-base-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        mmdebstrap(base, tar)
        docker(
            "import",
            "--change",
            f"LABEL {INPUTS_LABEL}={base.inputs}",
            "--change",
            'CMD ["/bin/bash"]',
            str(tar),
            base.tag,
        )
    times[base.inputs] = round(time.monotonic() - started, 1)
    save_times(times)
    print(
        f"    base {base.name}: {size_of(base.tag) / 1e6:.0f} MB"
        f" in {time.monotonic() - started:.0f}s",
        flush=True,
    )
    remove_stale(f"prequal.local/base-{base.name}", keep=base.tag)


def mmdebstrap(base: Base, tar: Path) -> None:
    """The base's root filesystem as a tar; no Docker involved."""
    debs = CACHE / "debs"  # downloaded packages, shared by every base and kept between runs
    debs.mkdir(parents=True, exist_ok=True)
    run_logged(
        f"base-{base.name}",
        [
            "mmdebstrap",
            *MMDEBSTRAP_OPTIONS,
            "--include=" + ",".join(base.packages),
            "--skip=essential/unlink",
            '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
            *(f'--setup-hook=mkdir -p "$1"{path}' for path in base.make_dirs),
            f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
            f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
            *(f'--customize-hook=rm -rf "$1"{path}' for path in base.remove),
            SUITE,
            str(tar),
        ],
    )


def remove_stale(repository: str, keep: str) -> None:
    """Older bases of the same name: untagged so they do not pile up (kept if still in use)."""
    for tag in docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository).split():
        if tag != keep:
            subprocess.run([DOCKER, "image", "rm", tag], capture_output=True, check=False)


def ca_bundle() -> Path | None:
    for name in ("PIP_CERT", "SSL_CERT_FILE"):
        if os.environ.get(name) and Path(os.environ[name]).is_file():
            return Path(os.environ[name])
    default = Path("/etc/ssl/certs/ca-certificates.crt")
    return default if default.is_file() else None


def stage(image: Image, staged: dict[str, Path], into: Path) -> Path:
    """A build context of the image's folder plus its staged files (hard links when possible)."""
    shutil.copytree(image.context, into, dirs_exist_ok=True)
    for destination, source in staged.items():
        target = into / destination
        if source.is_dir():
            shutil.copytree(source, target, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(source), str(target))
    return into


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def build(image: Image, staged: dict[str, Path], inputs: str) -> None:
    args = [
        "build",
        "--network",
        "host",
        "--progress",
        "plain",
        "--label",
        f"{INPUTS_LABEL}={inputs}",
        "--file",
        str(image.dockerfile),
    ]
    for tag in image.tags:
        args += ["--tag", tag]
    for arg, base in image.bases.items():
        args += ["--build-arg", f"{arg}={BASES[base].tag}"]
    if image.target:
        args += ["--target", image.target]
    bundle = ca_bundle()
    if bundle:
        args += ["--secret", f"id=pip-ca,src={bundle}"]
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    if image.staged:
        with tempfile.TemporaryDirectory(prefix=f"prequal-{image.name}-", dir=CACHE) as tmp:
            context = stage(image, staged, Path(tmp) / "context")
            args[args.index(str(image.dockerfile))] = str(context / "Dockerfile")
            run_logged(f"build-{image.name}", [DOCKER, *args, str(context)], env=env)
    else:
        run_logged(f"build-{image.name}", [DOCKER, *args, str(image.context)], env=env)


def size_of(tag: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", tag).strip())


def ensure_image(
    image: Image, times: dict[str, float], bases: dict[str, object]
) -> dict[str, object]:
    hint = "fix what the log shows and rerun `make images`: what was built is kept"
    for base in image.bases.values():
        try:
            bases[base] = ensure_base(BASES[base], times)
        except BuildError as error:
            raise BuildError(f"{error}\n{image.name}: {hint}") from None
    staged = {destination: make() for destination, make in image.staged.items()}
    inputs = image.inputs_hash(staged)
    cached = all(label_of(tag) == inputs for tag in image.tags)
    seconds = 0.0
    if not cached:
        print(f"==> {image.name}: building {', '.join(image.tags)}", flush=True)
        started = time.monotonic()
        try:
            build(image, staged, inputs)
        except BuildError as error:
            raise BuildError(f"{error}\n{image.name}: {hint}") from None
        seconds = round(time.monotonic() - started, 1)
        times[inputs] = seconds
        # At once, not only at the end: a build killed later (pytest-timeout's SIGKILL of a cold
        # `make images` did) must not leave images that are cached but have no build time.
        save_times(times)
    size = size_of(image.tags[0])
    state = "cached" if cached else f"built in {seconds:.0f}s"
    print(f"    {image.name}: {', '.join(image.tags)} {size / 1e6:.0f} MB ({state})", flush=True)
    return {
        "name": image.name,
        "tags": list(image.tags),
        "id": docker("image", "inspect", "--format", "{{.Id}}", image.tags[0]).strip(),
        "size_bytes": size,
        "cached": cached,
        "seconds": seconds,
        "build_seconds": times.get(inputs),
        "inputs": inputs,
    }


def read_times() -> dict[str, float]:
    return dict(json.loads(TIMES.read_text())) if TIMES.exists() else {}


def save_times(times: dict[str, float]) -> None:
    """This run's build times over what the file holds now: another `make images` that ran
    meanwhile (`--only traefik` beside the rest) keeps what it wrote."""
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    merged = {**read_times(), **times}
    partial = TIMES.with_name(f"{TIMES.name}.{os.getpid()}")
    partial.write_text(json.dumps(merged, indent=1, sort_keys=True))
    partial.replace(TIMES)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", help="build only this image (repeatable)")
    parser.add_argument("--output", type=Path, default=ROOT / ".run" / "images.json")
    options = parser.parse_args()
    started = time.monotonic()
    try:
        subprocess.run([str(HERE / "dockerd.sh"), "ensure"], check=True)
        times = read_times()
        selected = [image for image in images() if not options.only or image.name in options.only]
        results = []
        bases: dict[str, object] = {}
        try:
            for image in selected:
                results.append(ensure_image(image, times, bases))
        finally:
            save_times(times)
    except (BuildError, subprocess.CalledProcessError) as error:
        print(f"make images: {error}", file=sys.stderr)
        return 1
    options.output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "docker_host": "unix:///var/run/docker.sock",
        "project_budget_bytes": PROJECT_BUDGET_BYTES,
        "images": results,
        "bases": bases,
    }
    options.output.write_text(json.dumps(document, indent=2) + "\n")
    total = sum(int(str(r["size_bytes"])) for r in results)
    print(
        f"make images: {len(results)} images ({total / 1e6:.0f} MB)"
        f" in {time.monotonic() - started:.0f}s; list in {options.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
