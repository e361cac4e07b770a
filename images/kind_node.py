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
import subprocess
import sys
import time
from pathlib import Path

import build  # images/build.py: cached image builds, as `make images` runs them
from catalog import BASES, Base, Image
from kind_sources import (
    K8S,
    WORK,
    etcd_binary,
    folder_of,
    k8s_binary,
    kind_binary,
    kind_files,
    kubeadm_binary,
    kubeadm_images,
    version_file,
)
from sources import coredns_binary, pause_binary
from workspace import (
    DOCKER,
    HERE,
    INPUTS_LABEL,
    ROOT,
    SUITE,
    BuildError,
    content_hash,
    docker,
    label_of,
    run_logged,
    size_of,
)

NODE_IMAGE = f"prequal.local/kind-node:{K8S}"
# The default CNI's DaemonSet (images/kind/node/default-cni.yaml) runs a shell on this tag.
CNI_IMAGE = f"prequal.local/kind-cni:{SUITE}"

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
BASES.update({base.name: base for base in (NODE_BASE, COMPONENT_BASE)})


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


# --- what is built ----------------------------------------------------------------------------


def component_images() -> list[Image]:
    """One image per name kubeadm asks for, built from the binary of that name."""
    return [component_image(tag) for tag in kubeadm_images()]


def component_image(tag: str) -> Image:
    name = tag.rsplit("/", 1)[1].split(":", maxsplit=1)[0]
    if name == "pause":  # `make images`' own
        own = HERE / name
        staged = {name: pause_binary}
        return Image(f"kind-{name}", (tag,), own, own / "Dockerfile", (own,), staged=staged)
    if name == "coredns":  # `make images`' binary, run as kubeadm's Deployment expects
        own = HERE / "kind" / name
        staged = {name: coredns_binary}
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
            components = [build.ensure_image(image, times, bases) for image in wanted]
            base_image = node_base_image()
            node_base = build.ensure_image(base_image, times, bases)
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
