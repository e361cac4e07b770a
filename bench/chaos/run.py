"""One chaos run from start to report: schedule, platform, load and faults, drain, checks.

`run()` returns the figures (one flat dict, the JSON `make chaos` writes) and the list of
failed checks; `python -m bench.chaos` and tests/e2e/test_chaos.py both call it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.chaos import checks, pipeline, schedule
from bench.chaos.faults import Injector
from bench.chaos.load import Load
from bench.chaos.platform import REPORTS, SUBMITTED, ChaosPlatform

from devstack.operator import NAME as OPERATOR

Figures = dict[str, float | int | str]


@dataclass(frozen=True)
class Config:
    seed: int
    applications: int
    rate: float
    run_dir: Path
    short: bool = False
    # The bound on the drain after the load (docs/chaos.md): everything final, outbox empty,
    # every group's lag 0 within it, or the run fails.
    drain_bound_s: float = 180.0
    # After the drain, the LoanPipeline must be Ready within this.
    ready_bound_s: float = 120.0

    @property
    def kills(self) -> int:
        # Short: one of each kind. Full: every instance, then random ones; >= 20 land even if a
        # few find their target still in its back-off.
        return len(schedule.KINDS) if self.short else 26

    @property
    def operator_kills(self) -> int:
        return 1 if self.short else 4

    @property
    def durations(self) -> schedule.Durations:
        return schedule.SHORT if self.short else schedule.FULL


def _say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def run(config: Config, say: Callable[[str], None] = _say) -> tuple[Figures, list[str]]:
    load_seconds = config.applications / config.rate
    faults = schedule.build(
        config.seed, load_seconds, config.kills, config.durations, config.operator_kills
    )
    say(
        f"chaos: seed {config.seed}, {config.applications} applications at {config.rate:g}/s "
        f"(~{load_seconds:.0f}s of load), {len(faults)} faults:"
    )
    for fault in faults:
        print(fault.line(config.seed), flush=True)
    platform = ChaosPlatform(config.run_dir, say)
    injector = Injector(platform, say)
    watch: pipeline.ReadyWatch | None = None
    try:
        started = time.monotonic()
        platform.start()
        assert platform.control_plane
        assert platform.pipeline
        assert platform.api_client
        before = pipeline.Identities.read(
            platform.api_client, platform.connection, platform.pipeline
        )
        watch = pipeline.ReadyWatch(str(platform.control_plane.kubeconfig), platform.pipeline)
        watch.start()
        say(f"platform up in {time.monotonic() - started:.0f}s; load and faults start")
        load = Load(platform.api_urls, platform.token, config.applications, config.rate)
        load.start()
        # Injected on time by a thread of their own; the main thread supervises (its restarts
        # never block, but a fault's own wait, e.g. Kafka's restart, must not delay another).
        scheduler = threading.Thread(
            target=_inject_on_time, args=(faults, injector, load.started_at), daemon=True
        )
        scheduler.start()
        while scheduler.is_alive() or injector.busy or not load.done():
            platform.supervisor.tick()
            time.sleep(0.1)
        load.join()
        say(f"load done in {load.finished_at - load.started_at:.0f}s; draining")
        figures = _check(config, platform, load, injector)
        figures |= _check_pipeline(config, platform, before, watch)
    finally:
        if watch is not None:
            watch.stop()
        platform.stop()
        injector.finish()
    return figures, injector.failures + _failures(figures, config)


def _inject_on_time(faults: list[schedule.Fault], injector: Injector, start: float) -> None:
    for fault in faults:
        time.sleep(max(0.0, start + fault.at - time.time()))
        injector.inject(fault)


def _check(config: Config, platform: ChaosPlatform, load: Load, injector: Injector) -> Figures:
    outcomes = load.outcomes
    ids = [o.application_id for o in outcomes if o.application_id]
    accepted = [o for o in outcomes if o.final_status == 202]
    drain_s, left = checks.drain(platform, ids, config.drain_bound_s)
    rows = checks.read_rows(platform, ids)
    lost = [
        i for i in ids if i not in rows.status or (i not in rows.final_at and i not in rows.issue)
    ]
    twice = {
        i
        for i in ids
        if rows.credit_audits[i] > 1
        or rows.version.get(i, 1) > 2
        or (i in rows.final_at and rows.version.get(i) != 2)
    }
    submitted = list(checks.dump_topic(platform.connection, platform.topic(SUBMITTED)))
    reports = list(checks.dump_topic(platform.connection, platform.topic(REPORTS)))
    broken, duplicate_events = checks.order_violations(submitted, reports)
    pans = {o.pan.encode() for o in outcomes}
    topic_blobs = [
        r.key + r.value + r.raw_headers
        for topic in checks.all_topics(platform.connection)
        for r in checks.dump_topic(platform.connection, topic)
    ]
    dump = checks.pg_dump(platform)
    # Kept for the suite's leak scan of everything under the basetemp (tests/leakscan.py).
    (config.run_dir / "leak-scan").mkdir(exist_ok=True)
    (config.run_dir / "leak-scan" / "chaos.sql").write_bytes(dump)
    (config.run_dir / "leak-scan" / "chaos-topics.dump").write_bytes(b"\n".join(topic_blobs))
    leaks = {
        "pan_leaks_pg_dump": checks.leaked(pans, [dump]),
        "pan_leaks_topics": checks.leaked(pans, topic_blobs),
        "pan_leaks_logs": checks.leaked(pans, checks.log_files(config.run_dir)),
    }
    bad_5xx = checks.unexpected_5xx(load.responses, injector.windows)
    windows = injector.windows
    done = [w for w in windows if not w.skipped and not w.failed]
    recovery = checks.recovery(windows, outcomes, rows.final_at)
    kinds = [w.kind for w in done]
    killed = [schedule.kind_of(w.target) for w in done if w.kind == schedule.KILL]
    restarts = platform.supervisor.restarts()
    figures: Figures = {
        "seed": config.seed,
        "short": int(config.short),
        "rate_per_s": config.rate,
        "applications": len(outcomes),
        "accepted": len(accepted),
        "refused_4xx": sum(1 for o in outcomes if 400 <= o.final_status < 500),
        "gave_up": sum(1 for o in outcomes if o.final_status == 0 or o.final_status >= 500),
        "retried": sum(1 for o in outcomes if o.attempts > 1),
        "load_s": round(load.finished_at - load.started_at, 1),
        "kills": kinds.count(schedule.KILL),
        **{
            f"kills_{kind.replace('-', '_')}": killed.count(kind)
            for kind in (*schedule.KINDS, schedule.OPERATOR)
        },
        "kills_skipped": sum(1 for w in windows if w.skipped),
        "kafka_restarts": kinds.count(schedule.KAFKA_RESTART),
        "broker_stops": kinds.count(schedule.BROKER_STOP),
        "postgres_restarts": kinds.count(schedule.POSTGRES_CRASH),
        "read_only_windows": kinds.count(schedule.READ_ONLY),
        "rebalance_storms": kinds.count(schedule.REBALANCE_STORM),
        "process_restarts": sum(restarts.values()),
        "operator_restarts": restarts.get(OPERATOR, 0),
        "lost": len(lost),
        "duplicated": len(twice) + duplicate_events,
        "dead_lettered": len(rows.issue),
        "dead_letter_rows": rows.dead_letter_rows,
        "unexpected_5xx": len(bad_5xx),
        "expected_503": sum(1 for r in load.responses if r.status == 503)
        - sum(1 for r in bad_5xx if r.status == 503),
        "no_answer": sum(1 for r in load.responses if r.status == 0),
        "order_violations": broken,
        "outbox_pending": left.get("outbox_pending", -1),
        "lag_total": sum(v for k, v in left.items() if k.startswith("lag_")),
        "drain_s": round(drain_s, 1),
        "drain_bound_s": config.drain_bound_s,
        "max_recovery_s": max(recovery.values(), default=0.0),
        **{f"recovery_s_{kind.replace('-', '_')}": s for kind, s in sorted(recovery.items())},
        **leaks,
    }
    return figures


def _check_pipeline(
    config: Config, platform: ChaosPlatform, before: pipeline.Identities, watch: pipeline.ReadyWatch
) -> Figures:
    """After the drain: the LoanPipeline Ready again, its Ready lastTransitionTime never moved
    backwards, and no topic or Secret recreated (docs/chaos.md)."""
    assert platform.api_client
    assert platform.pipeline

    def operator_up() -> bool:
        platform.supervisor.tick()
        item = platform.supervised(OPERATOR)
        return item.process is not None and item.process.alive() and not item.starting

    ready_s = pipeline.wait_ready(
        platform.api_client, platform.pipeline, config.ready_bound_s, operator_up
    )
    watch.stop()
    watch.observe(platform.api_client)  # the last word, read after the wait
    after = pipeline.Identities.read(platform.api_client, platform.connection, platform.pipeline)
    topics, secrets = before.recreated(after)
    for name in topics + secrets:
        print(f"    recreated: {name}", flush=True)
    return {
        "pipeline_ready": int(ready_s is not None),
        "pipeline_ready_s": round(ready_s, 1) if ready_s is not None else -1,
        "ready_transitions": watch.transitions,
        "ready_transition_regressions": watch.regressions,
        "ready_watch_errors": watch.errors,
        "topics_watched": len(before.topic_ids),
        "secrets_watched": len(before.secret_uids),
        "topics_recreated": len(topics),
        "secrets_recreated": len(secrets),
    }


def _failures(f: Figures, config: Config) -> list[str]:
    wrong = []
    for key, what in (
        ("lost", "accepted applications neither final nor dead-lettered with a reason"),
        ("duplicated", "applications applied twice (audit rows, versions or event ids)"),
        ("unexpected_5xx", "5xx answers other than 503s in a database outage"),
        ("order_violations", "applications whose events broke order"),
        ("outbox_pending", "outbox rows not published at the end of the drain"),
        ("lag_total", "records the consumer groups had not committed at the end of the drain"),
        ("gave_up", "applications the API did not accept within the client's retry budget"),
        ("pan_leaks_pg_dump", "generated PANs found in plaintext in the pg_dump"),
        ("pan_leaks_topics", "generated PANs found in plaintext in a topic"),
        ("pan_leaks_logs", "generated PANs found in plaintext in a log file"),
        ("ready_transition_regressions", "the Ready condition's lastTransitionTime went back"),
        ("topics_recreated", "topics whose id changed during the run (deleted and recreated)"),
        ("secrets_recreated", "Secrets whose uid changed during the run (deleted and recreated)"),
    ):
        if f[key] != 0:
            wrong.append(f"{key} = {f[key]}: {what}")
    if f["pipeline_ready"] != 1:
        wrong.append(
            f"the LoanPipeline was not Ready within {config.ready_bound_s:g}s of the drain"
        )
    if f["drain_s"] >= config.drain_bound_s:
        wrong.append(f"the drain did not finish within its bound of {config.drain_bound_s:g}s")
    return wrong
