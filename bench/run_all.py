"""Run the benchmarks one after another, each in its own process, and sum them up.

Each benchmark prints its own report; this script then prints one compact table built from
the headline figures each writes with ``--summary-json``. Separate processes keep the memory
figures clean and give every benchmark a fresh event loop. Exit status is always 0.

Run: ``python -m bench.run_all``
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import steal_text, verdict

Row = tuple[str, str, str, bool | None]  # label, measured, target, met (None: no target)


def _dispatch(s: dict[str, Any]) -> list[Row]:
    return [
        (
            "dispatch capacity (median of rounds)",
            f"{s['throughput']:,.0f} upd/s",
            ">= 600 upd/s",
            s["throughput"] >= 600,
        ),
        (
            "dispatch latency at 300/s, p50 / p99 (median of runs)",
            f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} ms",
            "p99 < 50 ms",
            s["p99_ms"] < 50,
        ),
        (
            "machine probe before / after",
            " / ".join(f"{ms:.0f}" for ms in s["machine_probe_ms"]) + " ms",
            "",
            None,
        ),
        (
            "dispatch p99 of each arrival run",
            ", ".join(f"{ms:.1f}" for ms in s["p99_ms_runs"]) + " ms",
            "",
            None,
        ),
        (
            "CPU stolen during each arrival run",
            ", ".join(steal_text(share) for share in s["steal_share"]),
            "",
            None,
        ),
        ("  arrivals with no steal near them", ", ".join(s["p99_ms_unstolen"]), "", None),
    ]


def _polling(s: dict[str, Any]) -> list[Row]:
    missing = f", {s['missing']} lost" if s["missing"] else ""
    p95 = s["p95_s"]
    return [
        ("polling HTTP 429s", f"{s['rejected_429']}", "0", s["rejected_429"] == 0),
        (
            "polling delay p50 / p95 / max",
            f"{_num(s['p50_s'])} / {_num(p95)} / {_num(s['max_s'])} s{missing}",
            f"p95 <= {s['target_s']:.2f} s",
            p95 is not None and p95 <= s["target_s"] and not s["missing"],
        ),
    ]


def _memory(s: dict[str, Any]) -> list[Row]:
    recover = f"{s['recover_s']:.1f} s" + ("" if s["recover_done"] else " (unfinished)")
    return [
        (
            "memory RSS before / after / peak",
            f"{s['rss_before_mb']:.0f} / {s['rss_after_mb']:.0f} / {s['rss_peak_mb']:.0f} MB",
            "peak < 200 MB",
            s["rss_peak_mb"] < 200,
        ),
        ("memory jobs / recover() time", f"{s['jobs']:,} / {recover}", "", None),
    ]


def _providers(s: dict[str, Any]) -> list[Row]:
    missing = f", {s['pap_missing']} lost" if s["pap_missing"] else ""
    per_code = " / ".join(_num(s["per_code"][r]) for r in ("smspool", "spotsms", "papsms"))
    return [
        (
            "providers SMSPool active/tick",
            f"{s['pool_active_per_tick']:.2f} ({s['pool_checks']} sms/check)",
            "<= 1, 0 checks",
            s["pool_ok"],
        ),
        (
            "providers PapSMS webhook p95",
            f"{_num(s['pap_p95_s'])} s{missing}",
            f"<= {s['pap_target_s']:.1f} s",
            s["pap_ok"],
        ),
        ("providers HTTP 429s", f"{s['rejected_429']}", "0", s["rejected_429"] == 0),
        ("providers req/code pool/spot/pap", per_code, "", None),
    ]


def _broadcast(s: dict[str, Any]) -> list[Row]:
    return [
        (
            "broadcast rate achieved",
            f"{s['achieved_rate']:.2f}/s of {s['rate']:g}/s ({s['deviation_pct']:+.1f} %)",
            "within 5 %",
            abs(s["deviation_pct"]) <= 5,
        ),
        (
            "broadcast 429s at 30 msg/s",
            f"{s['rejected_429']} (busiest second {s['busiest_second']})",
            "0",
            s["rejected_429"] == 0,
        ),
    ]


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


BENCHMARKS: list[tuple[str, Callable[[dict[str, Any]], list[Row]]]] = [
    ("dispatch", _dispatch),
    ("polling", _polling),
    ("memory", _memory),
    ("providers", _providers),
    ("broadcast", _broadcast),
]


def main() -> int:
    table: list[tuple[list[Row], float]] = []
    with tempfile.TemporaryDirectory(prefix="numbot-bench-") as tmp:
        for name, summarize in BENCHMARKS:
            summary = Path(tmp) / f"{name}.json"
            print(f"=== bench.{name} " + "=" * 60, flush=True)
            began = time.monotonic()
            process = subprocess.run(
                [sys.executable, "-m", f"bench.{name}", "--summary-json", str(summary)],
                check=False,
            )
            seconds = time.monotonic() - began
            if process.returncode != 0 or not summary.exists():
                crashed = (name, f"crashed (exit {process.returncode})", "", False)
                table.append(([crashed], seconds))
                continue
            table.append((summarize(json.loads(summary.read_text())), seconds))
            print(flush=True)

    print("=== summary " + "=" * 77)
    print(f"  {'figure':<32} {'measured':<34} {'target':<16} verdict")
    for rows, seconds in table:
        for label, value, target, ok in rows:
            print(f"  {label:<32} {value:<34} {target:<16} {'' if ok is None else verdict(ok)}")
        print(f"  {'':<32} ({seconds:.0f} s wall)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
