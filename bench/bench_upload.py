"""Benchmark: upload of one export part file to SeaweedFS S3, the way the export task did it before (a stream
through ``ObjectStoragePath.open("wb")`` and ``shutil.copyfileobj``) against the filesystem's own transfer
(``target.put_file``: fsspec ``put_file``, s3fs's multipart upload with ``export.uploadChunkMegabytes`` chunks,
``export.uploadConcurrency`` at once), alternating, on incompressible files (a gzip or zstd part is).

    flock /tmp/meccano-bench.lock .venv/bin/python bench/bench_upload.py --sizes 10,40,160 --repeat 3 \
        [--chunk-mb 16] [--concurrency 2]

Starts its own SeaweedFS (tests/services); every upload runs in a child process (one task's process), which
reports its seconds and its peak RSS above the floor (imports and a first request, before the upload).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]
MIB = 1024 * 1024
METHODS = ("stream", "put_file")


def child(method: str, local: str, key: str) -> None:
    from meccano.export import target as target_module
    from meccano.settings.config import load_settings

    target = target_module.Target(load_settings())
    target.preflight()
    target.root.exists()  # the filesystem set up: part of the task's floor
    floor_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    path, remote = Path(local), target.root / key
    started = time.perf_counter()
    if method == "stream":  # the upload before the filesystem's own transfer
        with path.open("rb") as src, remote.open("wb") as dst:
            shutil.copyfileobj(src, dst, 8 * MIB)
    else:
        target_module.put_file(path, remote, **target.transfer)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "own_peak_mb": (peak_kb - floor_kb) / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,40,160", help="file sizes in MiB, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="alternate the two methods this many times; medians")
    ap.add_argument("--chunk-mb", type=int, default=0, help="export.uploadChunkMegabytes (0: the default)")
    ap.add_argument("--concurrency", type=int, default=0, help="export.uploadConcurrency (0: the default)")
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "LOCAL", "KEY"))
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return

    from tests.services.s3 import start_s3

    work = Path(tempfile.mkdtemp(prefix="meccano-bench-upload-"))
    s3 = start_s3(work / "s3")
    try:
        s3.client().create_bucket(Bucket="bench")
        cfg = work / "config.yml"
        cfg.write_text("default:\n  export:\n    tables:\n      - {table: Facts, dateColumn: creationDate}\n"
                       + (f"    uploadChunkMegabytes: {a.chunk_mb}\n" if a.chunk_mb else "")
                       + (f"    uploadConcurrency: {a.concurrency}\n" if a.concurrency else ""))
        env = {**os.environ, "AIRFLOW_CONN_AWS_DEFAULT": s3.connection_uri(), "EXPORT_BUCKET": "bench",
               "EXPORT_LOCALDIRECTORY": str(work / "local"), "MECCANO_CONFIG": str(cfg),
               "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING", "PYTHONPATH": f"{ROOT / 'include'}:{ROOT}"}
        results: dict[str, dict] = {}
        for size in (int(s) for s in a.sizes.split(",")):
            local = work / f"part-{size}.bin"
            local.write_bytes(os.urandom(size * MIB))
            runs: dict[str, list[dict]] = {m: [] for m in METHODS}
            for rep in range(a.repeat):
                for method in METHODS:
                    out = subprocess.run([sys.executable, __file__, "--child", method, str(local),
                                          f"{method}/{rep}/{local.name}"], env=env, check=True,
                                         capture_output=True, text=True).stdout
                    runs[method].append(json.loads(out.strip().splitlines()[-1]))
                    print(size, rep, method, runs[method][-1], file=sys.stderr)
            for method, samples in runs.items():
                seconds = statistics.median(r["seconds"] for r in samples)
                results[f"{method}_{size}MiB"] = {
                    "seconds_median": seconds, "mib_per_s": size / seconds,
                    "all_seconds": [round(r["seconds"], 3) for r in samples],
                    "own_peak_mb_max": max(r["own_peak_mb"] for r in samples)}
            local.unlink()
        print(json.dumps(results, indent=1))
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
