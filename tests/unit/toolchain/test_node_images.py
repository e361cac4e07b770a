"""How the node names and finds its images: `make images`' tags, as containerd names them."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from devstack.node.images import DEFAULT_IMAGES, image_set, pause_archive, qualified_name
from devstack.tiltfile import helm_calls
from devstack.workloads import OPERATOR_CHART, split_image, watched_namespaces


@pytest.mark.parametrize(
    ("reference", "qualified"),
    [
        ("postgres:15-bookworm", "docker.io/library/postgres:15-bookworm"),
        ("apache/kafka:4.1.1", "docker.io/apache/kafka:4.1.1"),
        ("prequal.local/pause:3.10.1", "prequal.local/pause:3.10.1"),
        ("loan-prequal", "docker.io/library/loan-prequal:latest"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
    ],
)
def test_references_are_qualified_as_docker_and_containerd_name_them(
    reference: str, qualified: str
) -> None:
    assert qualified_name(reference) == qualified


def test_images_env_overrides_only_the_node_images(tmp_path: Path) -> None:
    env = tmp_path / "images.env"
    env.write_text(
        "# comment\nPAUSE_IMAGE=prequal.local/pause:9\nDEBIAN_SUITE=bookworm\n"
        "PREQUAL_IMAGE='loan-prequal:2.0.0'\n"
    )
    images = image_set(env)
    assert images["PAUSE_IMAGE"] == "prequal.local/pause:9"
    assert images["PREQUAL_IMAGE"] == "loan-prequal:2.0.0"
    assert "DEBIAN_SUITE" not in images
    assert images["KAFKA_IMAGE"] == DEFAULT_IMAGES["KAFKA_IMAGE"]


def test_a_chart_image_splits_into_repository_and_tag() -> None:
    assert split_image("loan-prequal:0.1.0") == ("loan-prequal", "0.1.0")
    assert split_image("localhost:5000/loan-prequal") == ("localhost:5000/loan-prequal", "latest")


def test_the_pause_archive_is_a_docker_archive_under_the_sandbox_tag(tmp_path: Path) -> None:
    archive = pause_archive(tmp_path / "pause.tar", "prequal.local/pause:3.10.1")
    with tarfile.open(archive) as tar:
        manifest = json.loads(_member(tar, "manifest.json"))
        layer = _member(tar, "layer.tar")
    with tarfile.open(fileobj=io.BytesIO(layer)) as files:
        assert files.getnames() == ["bin/busybox"]
    assert manifest[0]["RepoTags"] == ["prequal.local/pause:3.10.1"]


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    assert member is not None
    return member.read()


def test_the_node_creates_the_namespaces_the_operator_watches_before_installing_it() -> None:
    """The operator chart puts a Role in each watched namespace; Helm creates none of them."""
    assert watched_namespaces(["logLevel=DEBUG", "watchNamespaces={a, b}"]) == ["a", "b"]
    assert watched_namespaces(["logLevel=DEBUG"]) == []
    assert watched_namespaces(helm_calls()[OPERATOR_CHART].sets) == ["lending"]
