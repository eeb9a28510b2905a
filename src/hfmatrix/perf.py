"""Performance figures (--performance), named and measured as optimum-benchmark does:
latency statistics, throughput from the volume it names, peak memory while a target runs."""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

MB = 1024**2
RAM_SAMPLE_S = 0.005  # how often the process's RSS is read while a target runs
# A fixed pure-Python loop timed right after each timed call: how fast the machine ran at
# that moment (a shared host's neighbours slow it by up to 2x for seconds at a time), so that
# two runs' latencies can be compared in its units (hfmatrix report --baseline).
CALIBRATION_LOOP = 300


@dataclass(frozen=True)
class PerfSettings:
    """How a target is measured (recorded in the block): warmup calls first, then at least
    ``iterations`` calls and at least ``duration_s`` seconds."""

    warmup: int = 10
    iterations: int = 10
    duration_s: float = 10.0
    batch_size: int = 1
    new_tokens: int = 32

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (as
    numpy's default)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency(values: list[float]) -> dict[str, Any]:
    """optimum-benchmark's latency fields, in seconds; ``stdev_`` is the coefficient of
    variation in percent."""
    if not values:
        raise ValueError("no latency values")
    mean = statistics.fmean(values)
    stdev = statistics.pstdev(values)
    return {
        "unit": "s",
        "values": [round(value, 9) for value in values],  # to the nanosecond
        "count": len(values),
        "total": math.fsum(values),
        "mean": mean,
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "stdev": stdev,
        "stdev_": 100 * stdev / mean if mean > 0 else 0.0,
    }


def throughput(volume: float, unit: str, values: list[float]) -> dict[str, Any]:
    """The ``volume`` (samples or tokens) that the calls timed in ``values`` produced, over
    their whole time, with both."""
    seconds = math.fsum(values)
    return {"unit": f"{unit}/s", "value": volume / seconds if seconds > 0 else None,
            "volume": volume, "volume_unit": unit, "seconds": seconds}  # fmt: skip


class Clock:
    """Times the device's work between two marks: CUDA events on cuda (one wait, when the
    span is read: none between a generate call's token marks), else the host's
    perf_counter, after waiting for the device on mps."""

    def __init__(self, device: str = "cpu"):
        self.cuda, self.mps = device.startswith("cuda"), device == "mps"
        self.torch: Any = None
        if self.cuda or self.mps:
            import torch

            self.torch = torch

    def mark(self) -> Any:
        if self.cuda:
            event = self.torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        if self.mps:
            self.torch.mps.synchronize()
        return time.perf_counter()

    def seconds(self, start: Any, end: Any) -> float:
        if self.cuda:
            end.synchronize()
            return start.elapsed_time(end) / 1000  # milliseconds
        return end - start

    def time(self, call: Callable[[], Any]) -> float:
        start = self.mark()
        call()
        return self.seconds(start, self.mark())


def spin() -> float:
    """Seconds the calibration loop takes now."""
    start = time.perf_counter()
    total = 0
    for i in range(CALIBRATION_LOOP):
        total += i
    return time.perf_counter() - start


def calibration(values: list[float]) -> dict[str, Any]:
    """A target's calibration block: the loop's time after each timed call, and its median."""
    return {"method": f"a {CALIBRATION_LOOP}-step Python loop timed after each timed call",
            "unit": "s", "values": [round(value, 9) for value in values],
            "median": statistics.median(values)}  # fmt: skip


def repeat(
    call: Callable[[], Any],
    settings: PerfSettings,
    clock: Clock,
    memory: Memory | None = None,
    warm: Callable[[], Any] | None = None,
) -> tuple[list[float], dict[str, Any], list[float]]:
    """(latencies, peak memory, calibration) of ``call``: the untimed warmup calls (``warm``,
    default ``call``; at least one) run while ``memory`` samples, then ``call`` is timed at
    least ``iterations`` times and ``duration_s`` long with no sampling beside it, each
    timed call followed by the calibration loop (spin) where the clock is the host's."""
    with (memory or Memory("cpu")).watch() as used:
        for _ in range(max(settings.warmup, 1)):
            (warm or call)()
    values: list[float] = []
    spins: list[float] = []
    host = not (clock.cuda or clock.mps)  # a device's time does not move with the host's
    start = time.perf_counter()
    while len(values) < settings.iterations or time.perf_counter() - start < settings.duration_s:
        values.append(clock.time(call))
        if host:
            spins.append(spin())
    return values, used, spins


class TokenTimes:
    """A logits processor (``generate(logits_processor=[...])``) that marks when each new
    token's logits arrive; ``start()`` resets it for every generate call."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.begin: Any = None
        self.stamps: list[Any] = []

    def start(self) -> None:
        self.stamps = []
        self.begin = self.clock.mark()

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.stamps.append(self.clock.mark())
        return scores

    def split(self, end: Any) -> tuple[float, float, list[float]]:
        """(prefill, decode, per-token latencies) of the call that ended at mark ``end``:
        prefill to the first token's logits, decode from there to the end, and the time
        between consecutive tokens."""
        if not self.stamps:
            raise ValueError("generate produced no token")
        seconds, first = self.clock.seconds, self.stamps[0]
        gaps = [seconds(earlier, later) for earlier, later in pairwise(self.stamps)]
        return seconds(self.begin, first), seconds(first, end), gaps


@contextmanager
def peak_ram() -> Iterator[dict[str, float]]:
    """Sample this process's RSS while the block runs; ``max_ram`` (MB) afterwards."""
    import psutil

    process, peak, done = psutil.Process(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(RAM_SAMPLE_S)

    sampler = threading.Thread(target=sample, name="hfmatrix-ram", daemon=True)
    found: dict[str, float] = {}
    sampler.start()
    try:
        yield found
    finally:
        done.set()
        sampler.join()
        found["max_ram"] = max(peak[0], process.memory_info().rss) / MB


class Memory:
    """Peak memory of a target: this process's RSS and, on CUDA, torch's allocator peaks."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    @contextmanager
    def watch(self) -> Iterator[dict[str, Any]]:
        import torch

        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        found: dict[str, Any] = {"unit": "MB"}
        with peak_ram() as ram:
            yield found
        found["max_ram"] = ram["max_ram"]
        if self.cuda:
            found["max_allocated"] = torch.cuda.max_memory_allocated() / MB
            found["max_reserved"] = torch.cuda.max_memory_reserved() / MB


def batched(inputs: dict[str, Any], size: int) -> dict[str, Any]:
    """The family's one-sample inputs repeated to a batch of ``size`` (tensors along dim 0)."""
    import torch

    return {key: value.repeat(size, *[1] * (value.dim() - 1))
            if isinstance(value, torch.Tensor) and value.dim() else value
            for key, value in inputs.items()}  # fmt: skip


Load = Callable[[], tuple[Any, Any]]
Inputs = Callable[[Any, Any], dict[str, Any] | None]


def measure(
    load: Load, forward: Inputs, generate: Inputs, settings: PerfSettings, device: str
) -> dict[str, Any]:
    """The performance block of one model: load_model, first_forward and forward, and for a
    generating class first_generate, generate, prefill, decode and per_token."""
    import torch

    clock, memory = Clock(device), Memory(device)
    targets: dict[str, Any] = {}
    block = {"settings": settings.as_dict(), "threads": torch.get_num_threads(),
             "device": device, "targets": targets}  # fmt: skip
    try:
        with memory.watch() as used:
            loaded: list[Any] = []
            seconds = clock.time(lambda: loaded.extend(load()))
        targets["load_model"] = {"latency": latency([seconds]), "memory": used}
        model, processor = loaded
        with torch.inference_mode():
            inputs = batched(forward(model, processor) or {}, settings.batch_size)
            targets.update(forward_targets(model, inputs, settings, clock, memory))
            generating = generate(model, processor)
            if generating is not None:
                inputs = batched(generating, settings.batch_size)
                targets.update(generate_targets(model, inputs, settings, clock, memory))
    except Exception as exc:  # the targets measured so far stay
        block["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    return block


def forward_targets(
    model: Any, inputs: dict[str, Any], settings: PerfSettings, clock: Clock, memory: Memory
) -> dict[str, Any]:
    """first_forward (one cold call) and forward (warm, repeated), in samples/s."""

    def call() -> Any:
        return model(**inputs)

    with memory.watch() as used:
        first = [clock.time(call)]
    values, warm, spins = repeat(call, settings, clock, memory)
    batch = settings.batch_size
    return {"first_forward": target(first, batch, "samples", used),
            "forward": target(values, batch * len(values), "samples", warm, spins)}  # fmt: skip


def target(
    values: list[float], volume: float, unit: str, memory: dict, spins: list[float] | None = None
) -> dict[str, Any]:
    """A target's block: latency, throughput, memory and (for a repeated target) the
    calibration loop's times beside its calls."""
    block = {"latency": latency(values), "throughput": throughput(volume, unit, values),
             "memory": memory}  # fmt: skip
    if spins:
        block["calibration"] = calibration(spins)
    return block


def generate_targets(
    model: Any, inputs: dict[str, Any], settings: PerfSettings, clock: Clock, memory: Memory
) -> dict[str, Any]:
    """first_generate and generate (samples/s); from each timed generate call's token times,
    reset per call, prefill (samples/s), decode and per_token (tokens/s)."""
    from hfmatrix.generation import fixed_length_greedy

    tokens = TokenTimes(clock)
    parts: dict[str, list[float]] = {"prefill": [], "decode": [], "per_token": []}

    def call(note: bool = True) -> None:
        tokens.start()
        model.generate(**inputs, **fixed_length_greedy(settings.new_tokens),
                       logits_processor=[tokens])  # fmt: skip
        if note:
            prefill, decode, gaps = tokens.split(clock.mark())
            parts["prefill"].append(prefill)
            parts["decode"].append(decode)
            parts["per_token"].extend(gaps)

    batch = settings.batch_size
    with memory.watch() as used:
        first = [clock.time(lambda: call(note=False))]
    targets = {"first_generate": target(first, batch, "samples", used)}
    values, used, spins = repeat(call, settings, clock, memory, warm=lambda: call(note=False))
    decoded = batch * len(parts["per_token"])  # every token after each call's first
    return targets | {
        "generate": target(values, batch * len(values), "samples", used, spins),
        "prefill": target(parts["prefill"], batch * len(values), "samples", used, spins),
        "decode": target(parts["decode"], decoded, "tokens", used, spins),
        "per_token": target(parts["per_token"], decoded, "tokens", used, spins),
    }
