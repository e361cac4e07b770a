#!/usr/bin/env python3
"""`make kind-image`: a kind node image built here, as `kind build node-image` would build it.

kind's node image is its base image (systemd, containerd, runc, CNI plugins and kind's own files)
plus kubeadm, kubelet and kubectl, and every image kubeadm runs already in the node's
containerd, since a node pulls nothing here (no registry is reachable). This builds, from the
Go module proxy and Debian only:

- kubeadm, from a copy of the wrapper module `make tools` builds the Kubernetes commands in,
  and the `kind` command, from the kind module `make tools` downloaded (kind-config-check);
- the node base (images/kind/node/Dockerfile): kind's images/base with Debian's packages;
- one image per name `kubeadm config images list` prints: the control plane, kube-proxy and
  etcd from `make tools`' binaries (images/kind/component), CoreDNS and pause from `make images`'
  sources (their versions are ours, their tags kubeadm's), and the default CNI's image;
- the node: the base run with `sleep`, its containerd started, every image imported with
  `ctr images import`, then `docker commit` (kind's own steps, pkg/build/nodeimage).

Not in `make images` or `make test`: opt-in, docs/cluster.md "## kind". Stdlib only.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import build  # images/build.py: bases, cached image builds, the Go and C builds of `make images`
from build import (
    CACHE,
    DOCKER,
    HERE,
    INPUTS_LABEL,
    ROOT,
    SUITE,
    VERSIONS,
    Base,
    BuildError,
    Image,
    content_hash,
    docker,
    ensure_image,
    label_of,
    run_logged,
    size_of,
)

K8S = VERSIONS["K8S_VERSION"]
KIND = VERSIONS["KIND_VERSION"]
NODE_IMAGE = f"prequal.local/kind-node:{K8S}"
# The default CNI's DaemonSet (images/kind/node/default-cni.yaml) runs a shell on this tag.
CNI_IMAGE = f"prequal.local/kind-cni:{SUITE}"
KIND_BASE_FILES = (
    CACHE / "go" / "mod" / "sigs.k8s.io" / f"kind@{KIND}" / "images" / "base" / "files"
)
WORK = CACHE / "kind"

# kind's images/base package list, from Debian (containerd, runc and the CNI plugins too); left
# out: fuse-overlayfs, nfs-common and open-iscsi (rootless nodes and storage drivers).
NODE_BASE = Base(
    "kind-node",
    (
        "systemd",
        "containerd",
        "runc",
        "containernetworking-plugins",
        "conntrack",
        "iptables",
        "nftables",
        "iproute2",
        "ethtool",
        "util-linux",
        "mount",
        "kmod",
        "libseccomp2",
        "pigz",
        "e2fsprogs",
        "bash",
        "ca-certificates",
        "curl",
        "jq",
        "procps",
    ),
)
COMPONENT_BASE = Base("kind-component", ("iptables", "conntrack", "nftables"))
build.BASES.update({base.name: base for base in (NODE_BASE, COMPONENT_BASE)})


# --- root filesystems -------------------------------------------------------------------------


def rootfs(base: Base) -> Path:
    """The base's mmdebstrap tar, kept in the cache: the slow part of a base needs no Docker."""
    tar = WORK / f"rootfs-{base.name}-{base.inputs[:12]}.tar"
    if not tar.exists():
        print(f"==> rootfs {base.name}: Debian {SUITE} + {', '.join(base.packages)}", flush=True)
        WORK.mkdir(parents=True, exist_ok=True)
        partial = tar.with_name("partial-" + tar.name)  # mmdebstrap writes a tar for *.tar
        build.mmdebstrap(base, partial)
        partial.rename(tar)
    return tar


def import_base(base: Base) -> None:
    """As `make images` imports a base (same tag and label), from the cached tar."""
    if label_of(base.tag) is None:
        label, cmd = f"LABEL {INPUTS_LABEL}={base.inputs}", 'CMD ["/bin/bash"]'
        docker("import", "--change", label, "--change", cmd, str(rootfs(base)), base.tag)


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


# --- what is built ----------------------------------------------------------------------------


def component_images() -> list[Image]:
    """One image per name kubeadm asks for, built from the binary of that name."""
    return [component_image(tag) for tag in kubeadm_images()]


def component_image(tag: str) -> Image:
    name = tag.rsplit("/", 1)[1].split(":", maxsplit=1)[0]
    if name == "pause":  # `make images`' own
        own = HERE / name
        staged = {name: build.pause_binary}
        return Image(f"kind-{name}", (tag,), own, own / "Dockerfile", (own,), staged=staged)
    if name == "coredns":  # `make images`' binary, run as kubeadm's Deployment expects
        own = HERE / "kind" / name
        staged = {name: build.coredns_binary}
        return Image(f"kind-{name}", (tag,), own, own / "Dockerfile", (own,), staged=staged)
    folder = HERE / "kind" / "component"
    binary = k8s_binary(name) if name != "etcd" else etcd_binary()
    return Image(
        f"kind-{name}",
        (tag,),
        folder,
        folder / "Dockerfile",
        (folder,),
        {"BASE_IMAGE": COMPONENT_BASE.name},
        staged={"bin": functools.partial(folder_of, name, binary)},
    )


def etcd_binary() -> Path:
    path = CACHE / "bin" / f"etcd-{VERSIONS['ETCD_VERSION']}" / "etcd"
    if not path.exists():
        raise BuildError(f"{path} is missing: run `make tools`")
    return path


def node_base_image() -> Image:
    folder = HERE / "kind" / "node"
    kubernetes = (kubeadm_binary(), k8s_binary("kubelet"), k8s_binary("kubectl"))
    return Image(
        "kind-node-base",
        (f"prequal.local/kind-node-base:{K8S}",),
        folder,
        folder / "Dockerfile",
        (folder,),
        {"BASE_IMAGE": NODE_BASE.name},
        staged={
            "files": kind_files,
            "kubernetes": lambda: folder_of("kubernetes", *kubernetes),
            "version": version_file,
        },
    )


def image_id(tag: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", tag).strip()


def ensure_node(base: str, tags: list[str], times: dict[str, float]) -> dict[str, object]:
    """kind's pkg/build/nodeimage steps: the base running `sleep`, its containerd started,
    every image imported into it (namespace k8s.io, pinned), then committed as the node."""
    inputs = content_hash(image_id(base), sorted(image_id(tag) for tag in tags), tags)
    cached = label_of(NODE_IMAGE) == inputs
    started = time.monotonic()
    if not cached:
        print(
            f"==> kind node {NODE_IMAGE}: {len(tags)} images into {base}'s containerd", flush=True
        )
        container = f"prequal-kind-build-{os.getpid()}"
        docker(
            "run",
            "-d",
            "--name",
            container,
            "--entrypoint=sleep",
            "--security-opt",
            "seccomp=unconfined",
            base,
            "infinity",
        )
        try:
            import_images(container, tags)
            docker(
                "commit",
                "--change",
                'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]',
                "--change",
                f"LABEL {INPUTS_LABEL}={inputs}",
                container,
                NODE_IMAGE,
            )
        finally:
            subprocess.run([DOCKER, "rm", "-f", "-v", container], capture_output=True, check=False)
        times[inputs] = round(time.monotonic() - started, 1)
    size = size_of(NODE_IMAGE)
    state = "cached" if cached else f"built in {time.monotonic() - started:.0f}s"
    print(f"    kind node: {NODE_IMAGE} {size / 1e6:.0f} MB ({state})", flush=True)
    return {
        "tag": NODE_IMAGE,
        "size_bytes": size,
        "images": tags,
        "inputs": inputs,
        "build_seconds": times.get(inputs),
    }


def import_images(container: str, tags: list[str]) -> None:
    def in_node(script: str) -> list[str]:
        return [DOCKER, "exec", "-i", container, "bash", "-euc", script]

    run_logged(
        "kind-node-containerd",
        in_node(
            "nohup containerd >/var/log/containerd-build.log 2>&1 &"
            " for i in $(seq 50); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done;"
            " cat /var/log/containerd-build.log; exit 1"
        ),
    )
    save = subprocess.Popen([DOCKER, "save", *tags], stdout=subprocess.PIPE)
    assert save.stdout is not None
    run_logged(
        "kind-node-import",
        in_node("ctr --namespace=k8s.io images import --all-platforms --no-unpack --digests -"),
        stdin=save.stdout.fileno(),
    )
    save.stdout.close()
    if save.wait() != 0:
        raise BuildError("docker save of the node's images failed")
    labels = " ".join(
        f"ctr -n k8s.io images label {tag} io.cri-containerd.pinned=pinned;" for tag in tags
    )
    run_logged(
        "kind-node-pin",
        in_node(
            f"{labels} ctr -n k8s.io images list -q | sort; pkill containerd;"
            # `sleep` is the container's PID 1 and reaps nothing: a stopped containerd stays a
            # zombie, so wait for it to leave every state but Z
            " while ps -o stat= -C containerd | grep -qv '^Z'; do sleep 0.2; done;"
            " rm -f /var/log/containerd-build.log"
        ),
    )


def link_tools(*binaries: Path) -> None:
    tools = ROOT / ".tools" / "bin"
    tools.mkdir(parents=True, exist_ok=True)
    for binary in binaries:
        link = tools / binary.name
        link.unlink(missing_ok=True)
        link.symlink_to(binary)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / ".run" / "kind-image.json")
    parser.add_argument(
        "--no-docker", action="store_true", help="only the binaries and root filesystems"
    )
    options = parser.parse_args()
    started = time.monotonic()
    try:
        link_tools(kind_binary(), kubeadm_binary())
        tars = [rootfs(base) for base in (COMPONENT_BASE, NODE_BASE)]
        if options.no_docker:
            print(f"make kind-image: binaries and {', '.join(map(str, tars))} ready")
            return 0
        subprocess.run([str(HERE / "dockerd.sh"), "ensure"], check=True)
        for base in (COMPONENT_BASE, NODE_BASE):
            import_base(base)
        times = build.read_times()
        try:
            bases: dict[str, object] = {}
            wanted = component_images()
            components = [ensure_image(image, times, bases) for image in wanted]
            base_image = node_base_image()
            node_base = ensure_image(base_image, times, bases)
            docker("tag", COMPONENT_BASE.tag, CNI_IMAGE)
            tags = [tag for image in wanted for tag in image.tags] + [CNI_IMAGE]
            node = ensure_node(base_image.tags[0], tags, times)
        finally:
            build.save_times(times)
    except (BuildError, subprocess.CalledProcessError) as error:
        print(f"make kind-image: {error}", file=sys.stderr)
        return 1
    document = {
        "node": node,
        "node_base": node_base,
        "components": components,
        "bases": bases,
        "kind": str(kind_binary()),
        "seconds": round(time.monotonic() - started, 1),
    }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"make kind-image: {NODE_IMAGE} in {time.monotonic() - started:.0f}s; then"
        f" `kind create cluster --config kind-config.yaml --image {NODE_IMAGE}` with dockerd's"
        " default runtime set to toolchain/kind/runc-drop-sys-resource (docs/cluster.md)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
