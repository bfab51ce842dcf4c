"""Draws the load bench's series (target/load-series.csv) as one PNG for BENCHMARKS.md.

Usage: python3 benches/plot-load.py [SERIES.csv] [OUT.png]
Needs matplotlib (`pip install matplotlib`); the bench itself does not.

Top: the server's resident memory and its data directory over the run. Bottom: each 30-second
interval's hold-loop p99 beside the static baseline's p99 in the same interval, and the slowest
request of the interval, on a log scale, with the 100 ms stall line.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    series = sys.argv[1] if len(sys.argv) > 1 else "target/load-series.csv"
    out = sys.argv[2] if len(sys.argv) > 2 else "target/load-series.png"
    with open(series, newline="") as f:
        rows = list(csv.DictReader(f))
    minutes = [int(r["seconds"]) / 60 for r in rows]

    def column(name: str) -> list[float]:
        return [float(r[name]) for r in rows]

    fig, (memory, latency) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    memory.plot(minutes, column("rss_mib"), label="resident memory (MiB)")
    memory.plot(minutes, column("data_mib"), label="data directory (MiB)")
    memory.set_ylabel("MiB")
    memory.set_ylim(bottom=0)
    memory.legend(loc="upper left")
    memory.grid(alpha=0.3)
    memory.set_title("Switchboard under a contact center's load")

    latency.plot(minutes, column("hold_p99_ms"), label="hold loop p99")
    latency.plot(minutes, column("baseline_p99_ms"), label="static TwiML p99 (baseline)")
    latency.plot(minutes, column("slowest_ms"), label="slowest request", alpha=0.6)
    latency.axhline(100, color="red", linestyle="--", linewidth=1, label="100 ms")
    latency.set_yscale("log")
    latency.set_ylabel("ms, per 30 s interval")
    latency.set_xlabel("minutes into the run")
    latency.legend(loc="upper left")
    latency.grid(alpha=0.3, which="both")

    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
