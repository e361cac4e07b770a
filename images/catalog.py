"""What `make images` builds: the Debian bases and the images on them.

A base is a Debian package set turned into an image with mmdebstrap (no Dockerfile); an image is
one `docker build` with its tags, its context, its inputs and what it stages into the context.
Stdlib only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sources import (
    coredns_binary,
    kafka_libs,
    network_policies_binary,
    pause_binary,
    prometheus_binary,
    traefik_binary,
)
from workspace import HERE, ROOT, SUITE, TAGS, VERSIONS, content_hash

# Images built only when named in PREQUAL_EXTRA_IMAGES (comma-separated): the node's Ingress
# controller (`traefik`), whose cold build from the Go module proxy may not fit the cold CI
# budget (docs/cluster.md); without it the node's endpoints use the NodePorts.
EXTRA_IMAGES = set(os.environ.get("PREQUAL_EXTRA_IMAGES", "").split(","))


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
