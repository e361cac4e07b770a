"""A private Prometheus server scraping loopback targets listed in a file it watches."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devstack.net import LOOPBACK, free_port, http_ok
from devstack.process import ManagedProcess, SingleProcessComponent
from devstack.tools import tool


@dataclass
class Prometheus(SingleProcessComponent):
    """`add_target(job, "127.0.0.1:port")` takes effect within a second (file service discovery)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    scrape_interval: str = "1s"
    rule_files: list[Path] = field(default_factory=list)
    process: ManagedProcess | None = None
    _targets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "prometheus.log"

    @property
    def _targets_file(self) -> Path:
        return self.data_dir / "targets.json"

    def start(self, timeout: float = 60) -> Prometheus:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_targets()
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": "prequal",
                    "file_sd_configs": [
                        {"files": [str(self._targets_file)], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        config_path = self.data_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.process = ManagedProcess(
            "prometheus",
            [
                tool("prometheus"),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=2d",
                "--log.level=warn",
            ],
            self.log_path,
        )
        self.process.start()
        self.process.wait_ready(lambda: http_ok(f"{self.url}/-/ready"), timeout)
        return self

    def add_target(self, job: str, address: str) -> None:
        """Scrapes `address` (host:port serving /metrics) with the label job=<job>."""
        self._targets.setdefault(job, [])
        if address not in self._targets[job]:
            self._targets[job].append(address)
        self._write_targets()

    def _write_targets(self) -> None:
        groups = [
            {"targets": addrs, "labels": {"job": job}} for job, addrs in self._targets.items()
        ]
        tmp = self._targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self._targets_file)  # atomic, so Prometheus never reads half a file
