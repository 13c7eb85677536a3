"""The benchmark's own code with tiny inputs: statistics, wrk output, timelines, results."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import memory
from bench.harness import Budget, OutOfTime, Timeline, marked_source, tarball
from bench.results import Figure, machine, render, write
from bench.stats import percentile, ratio, summarize
from bench.wrk import WrkError, parse_wrk

WRK_REPORT = """\
Running 2s test @ http://127.0.0.1:8080/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.06us  101.25us   3.20ms   85.31%
    Req/Sec    38.17k     1.22k   40.11k    70.00%
  Latency Distribution
     50%  398.00us
     75%  450.00us
     90%  521.00us
     99%    1.02ms
  76002 requests in 2.00s, 19.86MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  37991.41
Transfer/sec:      9.93MB
"""


# ----------------------------------------------------------------------------- statistics


def test_summary_of_odd_runs_has_the_middle_and_the_ends() -> None:
    s = summarize([3.0, 1.0, 2.0, 10.0, 4.0])
    assert (s.median, s.low, s.high, s.n) == (3.0, 1.0, 10.0, 5)
    assert (s.q1, s.q3) == (2.0, 4.0)


def test_summary_of_even_runs_averages_the_middle_two() -> None:
    assert summarize([1.0, 2.0, 3.0, 4.0]).median == 2.5


def test_summary_text_shows_median_spread_and_count() -> None:
    assert summarize([1.0, 1.5, 2.0]).text() == "1.50 s (1.00–2.00, n=3)"
    assert summarize([0.5]).text("MB", 1) == "0.5 MB (n=1)"
    assert summarize([]).text() == "not measured"


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 90) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_ratio_of_nothing_is_nan() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) != ratio(1.0, 0.0)  # NaN


def test_budget_refuses_work_it_cannot_fit() -> None:
    budget = Budget(5)
    budget.need(1)
    with pytest.raises(OutOfTime):
        budget.need(60)


# ----------------------------------------------------------------------------- wrk


def test_wrk_report_gives_rate_percentiles_in_ms_and_errors() -> None:
    result = parse_wrk(WRK_REPORT)
    assert result.requests_per_sec == pytest.approx(37991.41)
    assert result.requests == 76002
    assert result.p50 == pytest.approx(0.398)
    assert result.p99 == pytest.approx(1.02)
    assert result.latency_ms[90.0] == pytest.approx(0.521)
    assert result.errors == 3


def test_wrk_socket_errors_count_as_errors() -> None:
    text = WRK_REPORT + "  Socket errors: connect 1, read 2, write 0, timeout 4\n"
    assert parse_wrk(text).errors == 3 + 7


def test_wrk_output_without_latency_distribution_is_refused() -> None:
    with pytest.raises(WrkError, match="not a wrk --latency report"):
        parse_wrk("Requests/sec: 10\n  5 requests in 1.00s\n")


# ----------------------------------------------------------------------------- deploy timelines


def test_timeline_splits_steps_between_consecutive_moments() -> None:
    timeline = Timeline(source_received=0.5, first_200=6.0)
    timeline.ends = {"build": 3.0, "release": 3.5, "start": 5.25}
    steps = timeline.steps()
    assert steps == pytest.approx(
        {"upload": 0.5, "build": 2.5, "release": 0.5, "start": 1.75, "switch": 0.75, "total": 6.0}
    )


def test_timeline_with_a_missing_moment_stops_there() -> None:
    timeline = Timeline(source_received=0.5)
    timeline.ends = {"build": 3.0}
    assert set(timeline.steps()) == {"upload", "build"}


def test_timeline_finds_when_a_line_appeared() -> None:
    timeline = Timeline(
        lines=[(1.0, "-----> Building with x"), (2.5, "-----> Build finished in 1 s")]
    )
    assert timeline.when("Build finished in") == 2.5
    assert timeline.when("never printed") is None


def test_marked_source_changes_only_the_answer(tmp_path: Path) -> None:
    work = marked_source("static", tmp_path / "site", "bench-123")
    assert "hello from a static site bench-123" in (work / "public" / "index.html").read_text()
    (work / ".git").mkdir()
    marked_source("static", work, "bench-456")  # a redeploy keeps the git repository
    assert (work / ".git").is_dir()
    assert "bench-456" in (work / "public" / "index.html").read_text()
    assert len(tarball(work)) > 0


# ----------------------------------------------------------------------------- memory readers


def test_memory_stat_is_read_as_counters() -> None:
    stat = memory.parse_memory_stat("cache 4096\nrss 1048576\nmapped_file 0\n")
    assert stat == {"cache": 4096, "rss": 1048576, "mapped_file": 0}


def test_cgroup_memory_reads_usage_and_rss(tmp_path: Path) -> None:
    group = tmp_path / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "memory.usage_in_bytes").write_text("2097152\n")
    (group / "memory.stat").write_text("cache 1048576\nrss 524288\n")
    assert memory.cgroup_memory("abc", root=tmp_path) == (2097152, 524288)


def test_this_process_is_in_its_own_tree_with_memory() -> None:
    assert os.getpid() in memory.process_tree(os.getpid())
    rss, pss = memory.process_memory(os.getpid())
    assert rss > 1024**2 and 0 < pss <= rss


# ----------------------------------------------------------------------------- results file


def test_results_show_machine_targets_verdicts_and_tables(tmp_path: Path) -> None:
    met = Figure("router", "wrk both ways.", ["path", "req/s"], target="≥ 0.9", met=True)
    met.add("direct", "1000")
    missed = Figure("memory", "cgroups.", ["what", "MB"], target="≤ 20 MB", met=False)
    missed.add("static | instance", "25")
    missed.notes.append("supervisord is the largest part")
    text = render([met, missed], datetime(2026, 1, 2, 3, 4, tzinfo=UTC), 90.0, machine())
    assert "Taken 2026-01-02 03:04 UTC" in text and "1.5 minutes" in text
    assert f"on {os.cpu_count()} cores" in text
    assert "| router | ≥ 0.9 | **met** |" in text
    assert "| memory | ≤ 20 MB | **missed** |" in text
    assert "| static \\| instance | 25 |" in text
    assert "- supervisord is the largest part" in text
    out = tmp_path / "RESULTS.md"
    write(out, text)
    assert out.read_text() == text
    assert not list(tmp_path.glob("*.part"))
