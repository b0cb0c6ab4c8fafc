"""A Docker engine of the tests' own, and the images the deployment runs (tests/deploy/test_compose_up.py).

Nothing system-wide: ``dockerd`` gets its own data root, exec root and socket under ``CACHE`` (default
``/var/cache/meccano-docker``, ``MECCANO_DOCKER_CACHE`` moves it), no bridge and no iptables; every
container runs on the host network. The data root is the cache between runs on one machine: the Debian
root file system (debootstrap), the imported base image and the image layers stay there, so a warm run
rebuilds nothing that did not change. A daemon that already answers on the socket (a developer's) is
used and left running; one started here is stopped, with everything it ran, when the session ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MECCANO_DOCKER_CACHE", "/var/cache/meccano-docker"))
DOCKER = "/usr/bin/docker"  # Debian's client (docker.io); another `docker` on PATH may belong to the machine
BASE_IMAGE = "meccano-debian:bookworm"  # Debian 12, the release debian:bookworm-slim is built from
AIRFLOW_IMAGE = "meccano-servicemanager:test"
SERVICE_IMAGES = ("postgres", "mariadb", "redis", "seaweedfs", "nginx")  # tests/compose/images/<name>
MIRROR_DEFAULT = "http://deb.debian.org/debian"


def _debian_mirror() -> str:
    """The URI of this machine's Debian sources (debootstrap takes the same mirror apt uses)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split(":", 1)[1].strip().split()[0]
    return MIRROR_DEFAULT


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 1800, log: Path | None = None,
         check: bool = True, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    if log is not None:
        with log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
    if check and done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed ({done.returncode}):\n{tail}")
    return done


@dataclass
class DockerEngine:
    """A running ``dockerd`` and what the tests need of it; ``timings`` (s) feed bench/README.md."""

    socket_path: Path
    log: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, DOCKER_HOST=f"unix://{self.socket_path}")
        env.pop("DOCKER_CONFIG", None)
        return env

    def docker(self, *args: str, timeout: float = 1800, check: bool = True,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return _run([DOCKER, *args], env=env or self.env, timeout=timeout, log=self.log, check=check)

    def has_image(self, name: str) -> bool:
        return self.docker("image", "inspect", name, check=False).returncode == 0

    def ensure_base_image(self) -> None:
        """``meccano-debian:bookworm``: debootstrap of Debian 12 (minbase), imported once and cached."""
        if self.has_image(BASE_IMAGE):
            return
        started = time.monotonic()
        rootfs = CACHE / "rootfs"
        if not (rootfs / "etc" / "debian_version").exists():
            shutil.rmtree(rootfs, ignore_errors=True)
            _run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), _debian_mirror()], log=self.log)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run([DOCKER, "import", "-", BASE_IMAGE], stdin=tar.stdout, env=self.env, check=True,
                       capture_output=True, timeout=600)
        tar.wait(60)
        self.timings["base image (debootstrap + import)"] = time.monotonic() - started

    def build(self, tag: str, context: Path, dockerfile: Path | None = None, **args: str) -> float:
        """``docker build`` on the host network; returns the seconds it took."""
        started = time.monotonic()
        argv = ["build", "--network", "host", "-t", tag]
        for name, value in args.items():
            argv += ["--build-arg", f"{name}={value}"]
        if dockerfile is not None:
            argv += ["-f", str(dockerfile)]
        self.docker(*argv, str(context), timeout=2400)
        return time.monotonic() - started

    def build_images(self) -> None:
        """The project's image from docker/Dockerfile (only the Debian base's registry differs) and the
        local stand-ins of the backing services."""
        self.ensure_base_image()
        ca_bundle = Path("/etc/ssl/certs/ca-certificates.crt")  # pip behind this machine's TLS proxy
        target = ROOT / "docker" / "build-ca" / "ca-certificates.crt"
        if ca_bundle.exists() and (not target.exists() or target.read_bytes() != ca_bundle.read_bytes()):
            shutil.copyfile(ca_bundle, target)
        self.timings["image build"] = self.build(AIRFLOW_IMAGE, ROOT, ROOT / "docker" / "Dockerfile",
                                                 DEBIAN_IMAGE=BASE_IMAGE)
        images = ROOT / "tests" / "compose" / "images"
        started = time.monotonic()
        _run(["bash", str(images / "build.sh")], env=self.env, log=self.log, timeout=2400)
        self.timings["backing service images build"] = time.monotonic() - started

    def listening_containers(self) -> list[str]:
        return [c for c in self.docker("ps", "-q").stdout.split() if c]


def _answers(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"OK" in s.recv(1024)
    except OSError:
        return False


@dataclass
class RunningEngine:
    """An engine in use and, if this process started it, its ``dockerd`` (stopped by :meth:`stop`)."""

    engine: DockerEngine
    proc: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        running = self.engine.listening_containers()
        if running:
            self.engine.docker("kill", *running, check=False, timeout=120)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


def start_engine(log_dir: Path) -> RunningEngine:
    """Starts dockerd, or uses the one already answering on the cache's socket (then never stops it)."""
    assert shutil.which("dockerd") and os.path.exists(DOCKER), \
        "docker.io is missing: scripts/install-system-deps.sh test installs docker.io and debootstrap"
    for sub in ("root", "exec"):
        (CACHE / sub).mkdir(parents=True, exist_ok=True)
    sock = CACHE / "docker.sock"
    engine = DockerEngine(sock, log_dir / "docker.log")
    if _answers(sock):
        return RunningEngine(engine, None)
    sock.unlink(missing_ok=True)
    out = (log_dir / "dockerd.log").open("ab")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(CACHE / "root"), "--exec-root", str(CACHE / "exec"),
         "-H", f"unix://{sock}", "--pidfile", str(CACHE / "docker.pid"), "--bridge=none",
         "--iptables=false", "--ip-masq=false"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _answers(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"dockerd did not start; see {log_dir / 'dockerd.log'}")
        time.sleep(0.3)
    return RunningEngine(engine, proc)


@contextmanager
def docker_engine(log_dir: Path) -> Iterator[DockerEngine]:
    """Starts dockerd (or uses the one already answering on the cache's socket) for the block."""
    running = start_engine(log_dir)
    try:
        yield running.engine
    finally:
        running.stop()


class BackgroundBuild:
    """Starts the engine and builds every image in a thread, so the build overlaps the tests that need no
    Docker (it waits mostly on downloads); :meth:`result` joins it."""

    def __init__(self, log_dir: Path) -> None:
        import threading

        self.running: RunningEngine | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(log_dir,), name="docker-build", daemon=True)
        self._thread.start()

    def _work(self, log_dir: Path) -> None:
        try:
            self.running = start_engine(log_dir)
            self.running.engine.build_images()
        except BaseException as exc:  # re-raised in the test that needs the images
            self.error = exc

    def result(self) -> DockerEngine:
        self._thread.join()
        if self.error is not None:
            raise RuntimeError(f"building the images failed: {self.error}") from self.error
        assert self.running is not None
        return self.running.engine

    def stop(self) -> None:
        self._thread.join()
        if self.running is not None:
            self.running.stop()


def image_facts(engine: DockerEngine, image: str) -> dict[str, object]:
    """What an operator would check of an image: its user, size, environment."""
    info = json.loads(engine.docker("image", "inspect", image).stdout)[0]
    return {"user": info["Config"].get("User"), "size": info["Size"], "env": info["Config"].get("Env") or [],
            "entrypoint": info["Config"].get("Entrypoint")}
