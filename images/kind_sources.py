"""What the kind node image is made of, built here: kubeadm and the kind command from the Go
module proxy, the Kubernetes and etcd binaries `make tools` built, kind's base files with this
machine's containerd settings, and the images kubeadm asks for. Used by kind_node.py. Stdlib only.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from workspace import CACHE, VERSIONS, BuildError, run_logged

K8S = VERSIONS["K8S_VERSION"]
KIND = VERSIONS["KIND_VERSION"]
KIND_BASE_FILES = (
    CACHE / "go" / "mod" / "sigs.k8s.io" / f"kind@{KIND}" / "images" / "base" / "files"
)
# Where the node's root filesystems and staged folders are kept.
WORK = CACHE / "kind"


# --- binaries ---------------------------------------------------------------------------------


def k8s_ldflags() -> str:
    """The version stamps toolchain/install.sh gives the Kubernetes commands."""
    minor = K8S.split(".")[1]
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={K8S}",
            f"-X {package}.gitMajor=1",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
            f"-X {package}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def go_build(what: str, source: Path, out: Path, package: str, ldflags: str) -> Path:
    if out.exists():
        return out
    print(f"==> {what} from the Go module proxy (minutes the first time)", flush=True)
    env = {
        **os.environ,
        "GOMODCACHE": str(CACHE / "go" / "mod"),
        "GOCACHE": str(CACHE / "go" / "build"),
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
    }
    tmp = out.parent.with_name(out.parent.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    command = ["go", "-C", str(source), "build", "-trimpath", "-ldflags", ldflags]
    run_logged(f"{what}-build", [*command, "-o", str(tmp / out.name), package], env=env)
    shutil.rmtree(out.parent, ignore_errors=True)
    tmp.rename(out.parent)
    return out


def kubeadm_binary() -> Path:
    """kubeadm in a copy of `make tools`' wrapper module (same dependencies as the kubelet)."""
    out = CACHE / "bin" / f"kubeadm-{K8S}" / "kubeadm"
    wrapper = CACHE / "src" / f"k8s-{K8S}"
    if out.exists():
        return out
    if not (wrapper / "go.mod").exists():
        raise BuildError(
            f"{wrapper} is missing: run `make tools` (it builds the Kubernetes commands)"
        )
    source = CACHE / "src" / f"kubeadm-{K8S}"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(wrapper, source)
    (source / "tools.go").write_text(
        '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kubeadm"\n'
    )
    return go_build("kubeadm", source, out, "k8s.io/kubernetes/cmd/kubeadm", k8s_ldflags())


def kind_binary() -> Path:
    """The kind command, from the copy of the kind module `make tools` made."""
    source = CACHE / "src" / f"kind-{KIND}"
    if not (source / "go.mod").exists():
        raise BuildError(f"{source} is missing: run `make tools` (it downloads kind {KIND})")
    return go_build("kind", source, CACHE / "bin" / f"kind-{KIND}" / "kind", ".", "-s -w")


def k8s_binary(name: str) -> Path:
    path = CACHE / "bin" / f"k8s-{K8S}" / name
    if not path.exists():
        raise BuildError(f"{path} is missing: run `make tools`")
    return path


def folder_of(name: str, *binaries: Path) -> Path:
    """A folder holding just these binaries (hard links), staged as one COPY."""
    folder = WORK / "stage" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for binary in binaries:
        os.link(binary, folder / binary.name)
    return folder


# --- the node base's staged inputs --------------------------------------------------------------


def kind_files() -> Path:
    """kind's images/base/files with the two containerd settings this machine needs."""
    if not KIND_BASE_FILES.is_dir():
        raise BuildError(f"{KIND_BASE_FILES} is missing: run `make tools` (it downloads kind)")
    folder = WORK / "stage" / "files"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(KIND_BASE_FILES, folder)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    config = folder / "etc" / "containerd" / "config.toml"
    text = config.read_text()
    changes = {
        # a sandbox asking for a negative oom_score_adj needs CAP_SYS_RESOURCE (docs/cluster.md)
        "restrict_oom_score_adj = false": "restrict_oom_score_adj = true",
        'sandbox_image = "registry.k8s.io/pause:3.10"': f'sandbox_image = "{pause_tag()}"',
    }
    for old, new in changes.items():
        if old not in text:
            raise BuildError(f"kind {KIND}'s {config.name} no longer says {old!r}: update this")
        text = text.replace(old, new)
    config.write_text(text)
    return folder


def version_file() -> Path:
    path = WORK / "stage" / "version"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(K8S + "\n")
    return path


@functools.cache
def kubeadm_images() -> list[str]:
    """The images kubeadm runs, as it names them (`kubeadm config images list`)."""
    result = subprocess.run(
        [str(kubeadm_binary()), "config", "images", "list", "--kubernetes-version", K8S],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def pause_tag() -> str:
    return next(image for image in kubeadm_images() if "/pause:" in image)


def etcd_binary() -> Path:
    path = CACHE / "bin" / f"etcd-{VERSIONS['ETCD_VERSION']}" / "etcd"
    if not path.exists():
        raise BuildError(f"{path} is missing: run `make tools`")
    return path
