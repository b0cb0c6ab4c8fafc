# Meccano ServiceManager on Airflow. See README.md.
.PHONY: plugin-user demo test test-unit lint typecheck bench venv venv-demo system-deps-test system-deps-demo clean

PYTEST_ARGS ?=
# pytest-xdist workers of `make test`; tests/conftest.py decides the units of work and their order
TEST_WORKERS ?= 2

demo: system-deps-demo venv-demo plugin-user           ## run the product on its embedded default (Ctrl-C stops it); DEMO_ARGS="--port 8080 --fresh"
	scripts/demo.sh $(DEMO_ARGS)

test: system-deps-test venv plugin-user            ## install everything, start services, run the whole suite, stop them
	.venv/bin/ruff check .
	$(MAKE) typecheck
	.venv/bin/python -m pytest -n $(TEST_WORKERS) --no-loadscope-reorder $(PYTEST_ARGS)

test-unit: venv plugin-user                         ## only the tests that need no service
	.venv/bin/python -m pytest -m "not services and not browser and not ha" $(PYTEST_ARGS)

lint: venv
	.venv/bin/ruff check .

typecheck: venv                         ## mypy over include/ (settings in pyproject.toml [tool.mypy])
	.venv/bin/mypy

bench: venv                             ## benchmarks, run by hand; figures go to bench/README.md (tools: requirements-dev.txt)
	.venv/bin/python bench/bench_parse.py

plugin-user:                            ## the OS user script plugins run as, and its way to the interpreters
	scripts/plugin-user.sh

venv:                                   ## the runtime pins and the test/bench tools (requirements-dev.txt)
	scripts/install-venv.sh test
	scripts/install-node-deps.sh

venv-demo:                              ## the runtime pins only (requirements.txt): what `make demo` runs
	scripts/install-venv.sh demo
	scripts/install-node-deps.sh

system-deps-test:
	scripts/install-system-deps.sh test

system-deps-demo:
	scripts/install-system-deps.sh demo

clean:
	rm -rf .venv .demo
