"""What one dashboard progress update costs the reel that sends it: the wall time of Prefect's
`update_progress_artifact` (flows/dashboard.py sends one per reel at most every 2 s, from the stage's own thread)
against a local `prefect server start` with its UI and services, as `reelsplit serve` runs it. Prints a table:
median and 90th percentile in ms over N updates, in each of R repeats, and the share of a reel's time that is at
one update per 2 s.

    python benchmarks/dashboard_updates.py [--updates 50] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reelsplit-bench-") as home:
        from flows import prefect_env

        prefect_env.configure(Path(home))
        server = prefect_env.LocalServer(ui_port=prefect_env.free_port())
        from prefect import flow

        from flows.dashboard import artifact_key, update_progress

        @flow(name="reelsplit-dashboard-bench")
        def bench() -> list[list[float]]:
            from prefect.artifacts import create_progress_artifact

            runs = []
            for r in range(args.repeats):
                artifact = create_progress_artifact(0.0, key=artifact_key("progress", f"bench {r}"))
                times = []
                for i in range(args.updates):
                    t0 = time.perf_counter()
                    update_progress(artifact, 100.0 * i / args.updates, f"bench: separate {i} %")
                    times.append(time.perf_counter() - t0)
                runs.append(times)
            return runs

        with prefect_env.connected(server):
            runs = bench()
    print(f"{os.cpu_count()} cores; {args.updates} updates per repeat\n")
    print("| repeat | median ms | p90 ms | share of a reel's time at one update per 2 s |")
    print("|---|---|---|---|")
    for r, times in enumerate(runs, 1):
        median, p90 = statistics.median(times), sorted(times)[int(0.9 * len(times))]
        print(f"| {r} | {1000 * median:.1f} | {1000 * p90:.1f} | {100 * median / 2.0:.2f} % |")
    medians = [statistics.median(t) for t in runs]
    print(f"\nmedian of the repeats' medians: {1000 * statistics.median(medians):.1f} ms")


if __name__ == "__main__":
    main()
