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
Stdlib only: it runs before the virtualenv exists. What is built is in catalog.py, what is
staged into contexts in sources.py, the paths, versions and commands they share in workspace.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalog import BASES, MMDEBSTRAP_OPTIONS, Base, Image, images
from workspace import (
    CACHE,
    DOCKER,
    HERE,
    INPUTS_LABEL,
    ROOT,
    SUITE,
    BuildError,
    docker,
    label_of,
    run_logged,
    size_of,
)

# Build time of each input hash, so a cached run still reports what a build costs.
TIMES = CACHE / "images" / "build-seconds.json"
PROJECT_BUDGET_BYTES = 350 * 1000 * 1000


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
