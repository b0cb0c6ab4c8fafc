"""The deployment's figures: image size, cold and warm builds, and the container test's timings.

    .venv/bin/python bench/bench_compose.py [--skip-cold] [--skip-stack]

1. cold build: ``docker build --no-cache`` of docker/Dockerfile on the imported Debian 12 base (downloads
   included: no pip or apt cache is used);
2. warm builds: the same build again with nothing changed, then after a change under ``include/`` (a copy
   of the build context with one line appended to ``include/meccano/__init__.py``);
3. the image's size next to its Debian base;
4. unless ``--skip-stack``: ``pytest tests/deploy/test_compose_up.py -s`` and its printed figures (``up -d`` to
   every health check healthy, every shipped plugin's first run, kill-to-recovery times).

Uses the tests' Docker engine (tests/services/docker_engine.py): a running one on the cache's socket, else
one started for the run and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services.docker_engine import AIRFLOW_IMAGE, BASE_IMAGE, image_facts, start_engine  # noqa: E402


def _build(engine, context: Path, tag: str, *extra: str) -> float:
    started = time.monotonic()
    engine.docker("build", "--network", "host", *extra, "--build-arg", f"DEBIAN_IMAGE={BASE_IMAGE}", "-t", tag,
                  "-f", str(context / "docker" / "Dockerfile"), str(context), timeout=3600)
    return time.monotonic() - started


def _changed_context(tmp: Path) -> Path:
    """What the Dockerfile copies, with one line appended to the package (a change under include/)."""
    ctx = tmp / "ctx"
    ctx.mkdir()
    for name in ("requirements.txt", "pyproject.toml"):
        shutil.copy2(ROOT / name, ctx / name)
    shutil.copytree(ROOT / "include", ctx / "include", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "docker", ctx / "docker")
    shutil.copy2(ROOT / ".dockerignore", ctx / ".dockerignore")
    init = ctx / "include" / "meccano" / "__init__.py"
    init.write_text(init.read_text() + f"\n# bench_compose {time.time()}\n")
    return ctx


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--skip-stack", action="store_true")
    args = parser.parse_args()
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        running = start_engine(tmp)
        engine = running.engine
        try:
            engine.ensure_base_image()
            ca = Path("/etc/ssl/certs/ca-certificates.crt")
            if ca.exists():
                shutil.copyfile(ca, ROOT / "docker" / "build-ca" / "ca-certificates.crt")
            if not args.skip_cold:
                figures["cold build (s, --no-cache)"] = round(_build(engine, ROOT, AIRFLOW_IMAGE, "--no-cache"), 1)
            figures["warm build, nothing changed (s)"] = round(_build(engine, ROOT, AIRFLOW_IMAGE), 1)
            figures["warm build, include/ changed (s)"] = round(
                _build(engine, _changed_context(tmp), "meccano-servicemanager:bench"), 1)
            engine.docker("rmi", "meccano-servicemanager:bench", check=False)
            figures["image size (MB)"] = round(int(image_facts(engine, AIRFLOW_IMAGE)["size"]) / 1e6)
            figures["Debian 12 base size (MB)"] = round(int(image_facts(engine, BASE_IMAGE)["size"]) / 1e6)
        finally:
            running.stop()
    if not args.skip_stack:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                               "tests/deploy/test_compose_up.py"], capture_output=True, text=True, cwd=ROOT,
                              timeout=3600)
        found = re.search(r"compose test figures: (\{.*\})", done.stdout)
        figures["container test"] = json.loads(found.group(1)) if found else "no figures (see pytest output)"
        figures["container test result"] = done.stdout.strip().splitlines()[-1] if done.stdout else done.returncode
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
