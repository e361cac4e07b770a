"""The loan-prequal chart's jobs: migrations as a hook before install and upgrade, and the
retention, reindex and reseal CronJobs, each off unless asked for and holding only the keys its
work needs (docs/data-protection.md)."""

from __future__ import annotations

from typing import Any

from .conftest import Manifest, by_kind, documents, env_of, policies_of, render


def _secrets_dir(spec: Manifest, container: Manifest) -> dict[str, Any]:
    """What the job finds in /var/run/secrets/prequal: file → Secret (`*`: a whole Secret)."""
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = next(v for v in spec["volumes"] if v["name"] == mounts["/var/run/secrets/prequal"])
    return {
        item["path"]: source["secret"]["name"]
        for source in volume["projected"]["sources"]
        for item in source["secret"].get("items", [{"path": "*"}])
    }


def test_migrations_run_as_a_hook_before_install_and_upgrade() -> None:
    [job] = by_kind(documents(render("loan-prequal")), "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["prequalctl", "db", "upgrade"]
    assert env_of(container)["DATABASE_URL"]["secretKeyRef"]["key"] == "url"
    disabled = documents(render("loan-prequal", "--set", "migrations.enabled=false"))
    assert by_kind(disabled, "Job") == []


def test_retention_is_a_cronjob_that_is_off_unless_asked_for() -> None:
    assert by_kind(documents(render("loan-prequal")), "CronJob") == []
    docs = documents(
        render("loan-prequal", "--set", "retention.enabled=true", "--set", "retention.days=90")
    )
    [cron] = by_kind(docs, "CronJob")
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["command"] == ["prequalctl", "erase"]
    env = env_of(container)
    assert env["PERSONAL_DATA_RETENTION_DAYS"] == "90"
    assert env["DATABASE_URL"]["secretKeyRef"]["key"] == "url"
    assert not any(v.get("secret") for v in spec["volumes"])  # no key needed to erase
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    # Egress to PostgreSQL only, past the default-deny policy.
    retention = policies_of(docs)["retention"]
    assert retention["policyTypes"] == ["Egress"]
    assert len(retention["egress"]) == 1


def test_reindex_is_a_cronjob_with_the_private_and_index_keys_off_unless_asked_for() -> None:
    """docs/data-protection.md: reindexing needs each PAN, so the job holds the private keys
    and the index keys together; nothing else does."""
    docs = documents(render("loan-prequal", "--set", "reindex.enabled=true"))
    [cron] = by_kind(docs, "CronJob")
    assert cron["metadata"]["name"] == "rel-loan-prequal-reindex"
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["command"] == ["prequalctl", "reindex", "--batch", "200"]
    assert _secrets_dir(spec, container) == {
        "sealing_private_keys": "rel-loan-prequal-pan-keys",
        "pan_encryption_keys": "rel-loan-prequal-pan-keys",
        "*": "rel-loan-prequal-pan-keys-index",
    }
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert policies_of(docs)["reindex"]["policyTypes"] == ["Egress"]


def test_reseal_is_a_cronjob_with_the_key_secrets_pairs_only_off_unless_asked_for() -> None:
    """docs/data-protection.md: resealing opens data keys, so the job mounts what credit-service
    needs to open and the active public key to seal to; no index key, no legacy keyring."""
    assert not by_kind(documents(render("loan-prequal")), "CronJob")
    docs = documents(render("loan-prequal", "--set", "reseal.enabled=true"))
    [cron] = by_kind(docs, "CronJob")
    assert cron["metadata"]["name"] == "rel-loan-prequal-reseal"
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["command"] == [
        "prequalctl",
        "keys",
        "reseal",
        "--batch",
        "200",
        "--principal",
        "cronjob/rel-loan-prequal-reseal",
    ]
    assert _secrets_dir(spec, container) == {
        "sealing_private_keys": "rel-loan-prequal-pan-keys",
        "sealing_public_keys": "rel-loan-prequal-pan-keys",
        "sealing_active_key_id": "rel-loan-prequal-pan-keys",
    }
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert policies_of(docs)["reseal"]["policyTypes"] == ["Egress"]
