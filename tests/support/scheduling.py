"""How ``make test`` orders its run around the image build, the longest step, and how it splits the run into
xdist units of work (a pytest plugin, registered by ``tests/conftest.py``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

_BUILD: list = []  # the BackgroundBuild of this process, if it runs a test that needs Docker
# Under xdist, the long single-test modules that start a whole Airflow of their own: the HA failover goes out right
# after the compose stack's unit (beside it, it took as long as alone), the demo last (beside the stack it took 3.5x as
# long: 316 s against 95 s after it). The second Airflow of tests/deploy/test_airflow_range.py goes early too (its
# cold virtualenv takes minutes).
_FIRST_UNDER_XDIST = ("ha", "airflow_range")
_LAST_UNDER_XDIST = ("demo",)


def _needs_docker(items: list[pytest.Item]) -> list[pytest.Item]:
    return [item for item in items if "docker" in getattr(item, "fixturenames", ())]


# every test that needs the image
DOCKER_MODULES = ("tests/deploy/test_compose_up.py", "tests/deploy/test_image_packaging.py")


def _module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``make test`` runs on xdist workers (``-n 2``): each module is one unit of work, so its fixtures start
    once, and the modules that need Docker are one unit together, so one worker builds the image and runs the
    one compose stack. Units go out in collection order (``--no-loadscope-reorder``), which
    ``pytest_collection_modifyitems`` sets."""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module_of(nodeid)
            return "docker" if module in DOCKER_MODULES else module

    return ByModule(config, log)


@pytest.hookimpl(trylast=True)  # after -m / -k deselected what will not run
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the run around the image build, the longest step.

    Alone (``pytest``): if a collected test needs the images, start the engine and the builds now, in the
    background, and run those tests last, so the build overlaps everything else.

    Under xdist (``make test``: ``-n 2``, units of work by ``pytest_xdist_make_scheduler``): the tests that need
    Docker come first, then the HA module, the demo last, the rest between as collected. The worker that takes the
    Docker unit builds when its first test asks (the ``docker`` fixture) while the other works through the rest.
    """
    needs = _needs_docker(items)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        stray = [item.nodeid for item in needs if _module_of(item.nodeid) not in DOCKER_MODULES]
        if stray:
            raise pytest.UsageError(f"{stray[0]} needs Docker: add its module to DOCKER_MODULES in tests/conftest.py, "
                                    "so that one worker runs every test that needs the image")
        def marked(marks: tuple[str, ...]) -> list[pytest.Item]:
            return [item for item in items if item not in needs and any(item.get_closest_marker(m) for m in marks)]

        first, last = marked(_FIRST_UNDER_XDIST), marked(_LAST_UNDER_XDIST)
        items[:] = needs + first + [item for item in items if item not in {*needs, *first, *last}] + last
        return
    items[:] = [item for item in items if item not in needs] + needs
    if config.option.collectonly or not needs:
        return
    _BUILD.append(_start_build())


def _start_build() -> Any:
    from tests.services.docker_engine import BackgroundBuild

    return BackgroundBuild(Path(tempfile.mkdtemp(prefix="meccano-docker-")))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for build in _BUILD:
        build.stop()  # the engine and everything it ran; nothing listens after the session


@pytest.fixture(scope="session")
def docker():
    """A Docker engine of the tests' own with the project's image (docker/Dockerfile) and the backing
    services' local images built (tests/services/docker_engine.py); stopped at the end of the session."""
    if not _BUILD:  # under xdist the build starts with the first test that needs it
        _BUILD.append(_start_build())
    return _BUILD[0].result()
