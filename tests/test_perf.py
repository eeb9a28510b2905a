"""--performance: the statistics on synthetic timings (percentiles, per-call reset of the
token times, throughput volumes), then real measurements of tiny checkpoints."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from hfmatrix import perf
from hfmatrix.perf import Clock, PerfSettings, TokenTimes

LATENCY_FIELDS = {"unit", "values", "count", "total", "mean", "p50", "p90", "p95", "p99",
                  "stdev", "stdev_"}  # fmt: skip


class FakeClock(Clock):
    """A clock that advances by the given steps, one per reading."""

    def __init__(self, steps):
        super().__init__()
        self.time_now, self.steps = 0.0, iter(steps)

    def mark(self) -> float:
        self.time_now += next(self.steps)
        return self.time_now


def test_percentiles_interpolate_between_ranks_as_numpy_does():
    values = [float(v) for v in range(10, 0, -1)]  # 10 .. 1, unsorted on purpose
    assert perf.percentile(values, 50) == pytest.approx(5.5)
    assert perf.percentile(values, 90) == pytest.approx(9.1)
    assert perf.percentile(values, 99) == pytest.approx(9.91)
    assert perf.percentile([3.0], 95) == 3.0


def test_latency_fields():
    stats = perf.latency([0.1, 0.2, 0.3, 0.4])
    assert set(stats) == LATENCY_FIELDS
    assert (stats["unit"], stats["count"]) == ("s", 4)
    assert stats["total"] == pytest.approx(1.0) and stats["mean"] == pytest.approx(0.25)
    assert stats["stdev"] == pytest.approx(math.sqrt(0.0125))
    assert stats["stdev_"] == pytest.approx(100 * math.sqrt(0.0125) / 0.25)
    assert stats["p50"] <= stats["p90"] <= stats["p95"] <= stats["p99"]
    with pytest.raises(ValueError):
        perf.latency([])


def test_throughput_is_the_named_volume_over_the_timed_seconds():
    assert perf.throughput(48, "tokens", [0.5, 0.5, 1.0]) == {
        "unit": "tokens/s", "value": 24.0, "volume": 48, "volume_unit": "tokens", "seconds": 2.0
    }  # fmt: skip


def test_repeat_warms_up_sampling_memory_then_times_the_minimum_count_and_duration():
    calls = []
    settings = PerfSettings(warmup=3, iterations=4, duration_s=0.0)
    clock = FakeClock(itertools.repeat(0.5))
    values, memory, spins = perf.repeat(lambda: calls.append(1), settings, clock)
    assert len(calls) == 7 and values == [0.5] * 4
    assert memory["unit"] == "MB" and memory["max_ram"] > 0  # sampled over the warmup
    assert len(spins) == 4 and all(0 < spin < 0.5 for spin in spins)  # after each timed call
    calls.clear()
    settings = PerfSettings(warmup=0, iterations=1, duration_s=0.05)
    values, _, spins = perf.repeat(lambda: calls.append(1), settings, Clock())
    assert len(values) > 1 and len(calls) == len(values) + 1  # one untimed call sampled
    block = perf.target(values, len(values), "samples", {}, spins)["calibration"]
    assert block["median"] == statistics.median(spins) and len(block["values"]) == len(values)


def test_token_times_reset_for_every_generate_call():
    clock = FakeClock([0.0, 2.0, 1.0, 1.0, 0.5,  # call 1: begin, 3 tokens, end
                       10.0, 4.0, 3.0, 0.25])  # fmt: skip # call 2: begin 10 s later, 2 tokens
    tokens = TokenTimes(clock)
    tokens.start()
    for _ in range(3):
        tokens(None, None)
    assert tokens.split(clock.mark()) == (2.0, 2.5, [1.0, 1.0])
    tokens.start()  # the 10 s between the calls belongs to neither
    for _ in range(2):
        tokens(None, None)
    assert tokens.split(clock.mark()) == (4.0, 3.25, [3.0])


class FakeGenerator:
    """Stands in for a model's generate(): calls the logits processors once per token."""

    def __init__(self, tokens: int):
        self.tokens = tokens

    def generate(self, logits_processor, **kwargs):
        assert kwargs["max_new_tokens"] == kwargs["min_new_tokens"] == self.tokens
        for processor in logits_processor:
            for _ in range(self.tokens):
                processor(None, None)


def test_generate_volumes_count_the_tokens_each_call_made(monkeypatch):
    settings = PerfSettings(warmup=1, iterations=3, duration_s=0.0, batch_size=2, new_tokens=5)
    memory = perf.Memory("cpu")
    targets = perf.generate_targets(FakeGenerator(5), {}, settings, Clock(), memory)
    assert set(targets) == {"first_generate", "generate", "prefill", "decode", "per_token"}
    assert targets["generate"]["latency"]["count"] == 3
    assert targets["generate"]["throughput"]["unit"] == "samples/s"
    assert targets["generate"]["throughput"]["volume"] == 2 * 3  # batch x calls
    assert targets["prefill"]["throughput"]["volume"] == 2 * 3
    assert targets["decode"]["throughput"] | {"value": 0, "seconds": 0} == {
        "unit": "tokens/s",
        "value": 0,
        "volume": 2 * 4 * 3,
        "volume_unit": "tokens",
        "seconds": 0,
    }  # fmt: skip  (4 tokens after each call's first, per sequence of the batch)
    assert targets["per_token"]["latency"]["count"] == 4 * 3  # gaps within calls only
    assert targets["per_token"]["throughput"]["volume"] == 2 * 4 * 3
    assert targets["first_generate"]["latency"]["count"] == 1


# --- real measurements: tiny checkpoints through the run's child process ----------------------

QUICK = PerfSettings(warmup=2, iterations=5, duration_s=0.2, batch_size=2, new_tokens=6)
FORWARD = {"load_model", "first_forward", "forward"}
GENERATE = {"first_generate", "generate", "prefill", "decode", "per_token"}


def measured(family, isolated, settings: PerfSettings = QUICK) -> dict:
    from families_helpers import family_test

    from hfmatrix.runner import RunSettings, run_model

    test = family_test(family)
    run = RunSettings(results_dir=isolated / "results", performance=settings)
    return run_model(type(test), test.project, "tiny", "cpu", run).record


@pytest.mark.parametrize(
    ("family", "targets"),
    [("bert", FORWARD), ("gpt", FORWARD | GENERATE), ("whisper", FORWARD | GENERATE)],
    indirect=["family"],
)
def test_a_performance_record_carries_every_figure(family, isolated, targets):
    record = measured(family, isolated)
    assert record["status"] == "passed", record["reason"]
    block = record["performance"]
    assert block["settings"] == QUICK.as_dict() and block["device"] == "cpu"
    assert record["request"]["performance"] == QUICK.as_dict()  # --resume keys on it
    assert set(block["targets"]) == targets
    for name, target in block["targets"].items():
        stats = target["latency"]
        assert set(stats) == LATENCY_FIELDS, name
        assert 0 < stats["p50"] <= stats["p90"] <= stats["p95"] <= stats["p99"], name
        assert stats["count"] == len(stats["values"]) and stats["stdev_"] >= 0
        assert target["memory"]["unit"] == "MB" and target["memory"]["max_ram"] > 100
        if name in ("forward", "generate"):
            assert stats["count"] >= QUICK.iterations
        if name != "load_model":
            rate = target["throughput"]
            assert rate["value"] == pytest.approx(rate["volume"] / stats["total"])
    if "generate" in targets:
        calls = block["targets"]["generate"]["latency"]["count"]
        decode = block["targets"]["decode"]["throughput"]
        assert decode["unit"] == "tokens/s"
        assert decode["volume"] == QUICK.batch_size * (QUICK.new_tokens - 1) * calls
        assert block["targets"]["per_token"]["latency"]["count"] == calls * (QUICK.new_tokens - 1)
        assert block["targets"]["generate"]["throughput"]["unit"] == "samples/s"


@pytest.mark.parametrize("family", ["bert"], indirect=True)
def test_perf_options_need_performance(family, capsys):
    from families_helpers import family_test

    from hfmatrix.cli import family_main

    assert (
        family_main(type(family_test(family)), ["--perf-warmup", "3", "--perf-new-tokens", "4"])
        == 2
    )
    assert capsys.readouterr().err.strip() == (
        "error: --perf-warmup, --perf-new-tokens without --performance"
    )


@pytest.mark.parametrize("family", ["vit"], indirect=True)
def test_the_bench_times_a_family_both_ways(family, isolated):
    from hfmatrix import bench
    from hfmatrix.project import Project

    figures = bench.forward_figures(Project.find(), "vit", seconds=0.25)
    assert len(figures) == 4 and all(0 < figures[i] < 1 for i in (0, 1, 3))  # s per call
    assert 0.2 < figures[2] < 5  # our p50 over Timer's


def test_the_bench_refuses_an_unknown_family(capsys):
    from hfmatrix import bench

    assert bench.main(["--family", "nosuch", "--only", "envs"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown family 'nosuch'"


@pytest.mark.parametrize("family", ["bert"], indirect=True)
def test_a_measurement_cut_short_keeps_the_tests_verdict(family, isolated):
    """The time limit falls during the measurement: the record keeps its passed tests and
    says in its performance block why the figures are missing."""
    from families_helpers import family_test

    from hfmatrix.forking import FORK, start_for
    from hfmatrix.runner import RunSettings, run_model

    test = family_test(family)
    endless = PerfSettings(warmup=0, iterations=1, duration_s=600.0)
    limit = 10 if start_for("cpu").method == FORK else 30  # a fresh interpreter imports first
    run = RunSettings(results_dir=isolated / "results", performance=endless, timeout_s=limit)
    record = run_model(type(test), test.project, "tiny", "cpu", run).record
    assert (record["status"], record["reason"]) == ("passed", "")
    assert record["tests"]["from_pretrained"]["status"] == "passed"
    assert record["performance"]["error"].startswith(f"timeout: no result within {limit} s")
    assert "pending" not in record["performance"] and record["crash"]["signal"] == "SIGKILL"
