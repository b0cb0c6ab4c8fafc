"""Where one DagBag fill of N generated plugins spends its time: cProfile, sorted by cumulative time.

    .venv/bin/python bench/profile_parse.py [--plugins 1000] [--top 45]

The plugins are those of ``bench_parse.py`` (same generator); Airflow is imported first and ``gc.freeze()`` runs
before the fill, as the dag-processor does before it forks a parser. Figures under the profiler are about twice
the plain run's: read the shares, not the seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_parse import make_meccano  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=1000)
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="profile-parse-"))
    dags = make_meccano(base, args.plugins)
    os.environ["MECCANO_PLUGINS_DIR"] = str(base / "plugins")
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.standard.operators.bash import BashOperator  # noqa: F401  (import cost excluded)
    from airflow.providers.standard.operators.python import PythonOperator  # noqa: F401
    from airflow.sdk import DAG  # noqa: F401

    gc.freeze()
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    bag = DagBag(dag_folder=str(dags), bundle_path=str(dags))
    profile.disable()
    print(f"{len(bag.dags)} DAGs, {len(bag.import_errors)} import errors, "
          f"{time.perf_counter() - started:.2f} s under the profiler")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
