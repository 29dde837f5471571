"""Helpers shared by the benchmarks: settings, percentiles, verdicts, log counting, profiling,
and a probe of how fast the machine is right now."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import math
import os
import pstats
import socket
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.config import Settings

TOKEN = "123456789:AAH-bench-token-for-numbot-000000000"
UNUSED_TELEGRAM_URL = "http://127.0.0.1:9"  # discard port: never contacted by the dispatch bench


def make_settings(database_path: Path, **overrides: Any) -> Settings:
    """Settings for a benchmark: nothing read from the environment or `.env`."""
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "telegram_api_url": UNUSED_TELEGRAM_URL,
        "database_path": database_path,
        "smspalm_rate": "0.001",
        "smspalm_rate_limit": 6000,
        "markup_percent": 30,
        "http_timeout_seconds": 5,
        "http_port": 0,  # no HTTP listener unless a benchmark asks for one
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for the bot's HTTP listener)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def line(name: str, value: str, target: str = "", ok: bool | None = None) -> str:
    """One aligned report line: name, value, and the target with its verdict if there is one."""
    text = f"  {name:<38} {value:>14}"
    if target:
        text += f"   target {target}"
    if ok is not None:
        text += f"  {verdict(ok)}"
    return text


class LogCounter(logging.Handler):
    """Counts WARNING+ records per (logger, message template); prints nothing.

    The benchmarks install it as the only root handler so that warnings from the bot (or
    APScheduler) are reported as figures instead of flooding the output.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[tuple[str, str]] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[(record.name, str(record.msg))] += 1

    def summary(self, limit: int = 5) -> list[str]:
        return [
            f"    {count:>6} × {name}: {msg[:90]}"
            for (name, msg), count in self.counts.most_common(limit)
        ]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def install_log_counter() -> LogCounter:
    counter = LogCounter()
    root = logging.getLogger()
    root.handlers[:] = [counter]
    root.setLevel(logging.WARNING)
    return counter


def profile_report(profiler: cProfile.Profile, limit: int = 30) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    return out.getvalue()


def add_summary_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--summary-json", type=Path, default=None, help="also write the headline figures here"
    )


def write_summary(path: Path | None, figures: dict[str, Any]) -> None:
    """Headline figures for run_all (NaN is written as null)."""
    if path is None:
        return
    clean = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in figures.items()}
    path.write_text(json.dumps(clean))


PROBE_UPDATE: dict[str, Any] = {
    "update_id": 1,
    "callback_query": {
        "id": "9000000001",
        "from": {"id": 100001, "is_bot": False, "first_name": "User", "language_code": "en"},
        "chat_instance": "ci100001",
        "data": "c:12:US",
        "message": {"message_id": 501, "date": 1_700_000_000, "text": "previous screen"},
    },
}


def machine_probe_ms(repeats: int = 5) -> float:
    """Milliseconds for a fixed piece of the kind of work a bot does (decode JSON, walk and
    copy small dicts, encode), median of `repeats`. It depends on nothing in this project, so
    it tells how fast the machine is at the moment: on a shared VM it changes by half or more
    from one minute to the next, and every figure printed next to it with it."""
    text = json.dumps(PROBE_UPDATE)
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for number in range(4000):
            update = json.loads(text)
            query = update["callback_query"]
            copy = {key: value for key, value in query.items() if value is not None}
            copy["data"] = f"{query['data']}:{number}"
            json.dumps({"ok": True, "result": copy, "sorted": sorted(copy)})
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000


class StealMeter:
    """CPU time the hypervisor took from this VM while a phase ran (the `steal` column of
    /proc/stat), as a share of one core: the bot runs on one. On this shared VM it is near
    0 most of the time and 40-90 % for seconds at a stretch, and a core that is stolen
    from cannot keep up with updates whatever the bot does; a latency figure from such a
    phase measures the neighbours. None where /proc/stat is not there."""

    def __init__(self) -> None:
        self._ticks = self.ticks()
        self._started = time.perf_counter()

    @staticmethod
    def ticks() -> int | None:
        try:
            with open("/proc/stat") as stat:
                fields = stat.readline().split()
        except OSError:
            return None
        return int(fields[8]) if fields[:1] == ["cpu"] and len(fields) > 8 else None

    def share(self) -> float | None:
        """Stolen core-seconds per second since the meter was made."""
        now = self.ticks()
        elapsed = time.perf_counter() - self._started
        if now is None or self._ticks is None or elapsed <= 0:
            return None
        return (now - self._ticks) / os.sysconf("SC_CLK_TCK") / elapsed


def steal_text(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


class StealTimeline:
    """When in a run the hypervisor took CPU: /proc/stat's steal, read every `every` seconds
    on the event loop (a read costs about 20 µs) between `start()` and `stop()`. Then
    `touched(start, end)` tells whether a stretch overlaps a window in which steal was
    counted, so the latency of arrivals the neighbours did not touch can be printed beside
    the whole run's."""

    def __init__(self, every: float = 0.1) -> None:
        self.every = every
        self._samples: list[tuple[float, int]] = []
        self._windows: list[tuple[float, float]] = []
        self._handle: asyncio.TimerHandle | None = None

    def _sample(self) -> bool:
        ticks = StealMeter.ticks()
        if ticks is not None:
            self._samples.append((asyncio.get_running_loop().time(), ticks))
        return ticks is not None

    def _tick(self) -> None:
        if self._sample():
            self._handle = asyncio.get_running_loop().call_later(self.every, self._tick)

    def start(self) -> None:
        self._tick()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._sample()
        pairs = zip(self._samples, self._samples[1:], strict=False)
        self._windows = [(t0, t1) for (t0, n0), (t1, n1) in pairs if n1 > n0]

    def touched(self, start: float, end: float) -> bool:
        return any(t0 < end and t1 > start for t0, t1 in self._windows)
