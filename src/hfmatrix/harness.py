"""The base class of every family's tests: load through pipeline() and from_pretrained(),
check the outputs, and turn the outcome into one result record per (model, hardware)."""

from __future__ import annotations

import contextlib
import gc
import inspect
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from hfmatrix import backends, checkpoints, drift, forking, generation, golden, perf, results
from hfmatrix import hardware as hardware_module
from hfmatrix.checks import Check, agree, close, equal, numerics, truth
from hfmatrix.expectations import stack_words
from hfmatrix.oracle import Published, not_applicable
from hfmatrix.perf import PerfSettings
from hfmatrix.project import Project
from hfmatrix.sources import Source, Unavailable, pickle_weights, resolve_hub
from hfmatrix.specs import Override

ROUND_TRIP_ATOL = 1e-5
# Against the fp32 reference, whole-model outputs in half precision: the eager-vs-SDPA
# tolerances of transformers' tests (fp16 5e-3, bf16 1e-2) are per operation; a model adds
# up its layers' rounding. Measured on the tiny checkpoints (CPU): see the README.
HALF_PRECISION_ATOL = {"float16": 1e-1, "bfloat16": 2e-1}
PICKLE_POLICY = (
    "unpickling can run code, so hfmatrix loads safetensors weights only unless the run "
    "passes --allow-pickle"
)
REMOTE_CODE_POLICY = (
    "hfmatrix runs a model's own code only when overrides.json marks it "
    "requires_remote_code and the run passes --allow-remote-code"
)
Progress = Callable[[dict[str, Any]], None]


class FamilyTest:
    """Tests for one model of an architecture class; a family module subclasses it.

    A subclass names its family and loader classes and provides the class-specific parts:
    ``build_tiny`` (the tiny checkpoint recipe), ``model_inputs`` (the fixed inputs of the
    forward pass; ``generate_inputs`` for a generating class), ``pipeline_checks`` and
    ``from_pretrained_checks`` (what the outputs must be).
    """

    family: ClassVar[str]
    auto_model: ClassVar[Any]
    auto_processor: ClassVar[Any]
    timeout_s: ClassVar[float] = 900.0  # one model, all its tests (--timeout overrides)
    atol: ClassVar[float] = 1e-4  # the class's tolerance against the fp32 CPU reference
    openvino_atol: ClassVar[float | None] = None  # where OpenVINO is allowed more (ANCHORS)
    openvino_class: ClassVar[str]  # the optimum.intel class that exports the model
    new_tokens: ClassVar[int] = 0  # a generating class's greedy tokens, compared id by id
    # expected outputs that a source publishes for well-known checkpoints, by model id
    published: ClassVar[dict[str, Published]] = {}
    # tiny model id -> its recipe, for a family with a tiny checkpoint per class
    tiny_recipes: ClassVar[dict[str, Callable[[Path], None]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        forking.note_imports_done()  # the family module has imported torch, no op has run

    def __init__(
        self,
        model_id: str,
        project: Project | None = None,
        *,
        revision: str | None = None,
        allow_remote_code: bool = False,
        allow_pickle: bool = False,
        dtype: str = "float32",
        performance: PerfSettings | None = None,
    ):
        self.project = project or Project.find(Path(inspect.getfile(type(self))).parent)
        if model_id == "tiny":
            model_id = self.project.tiny_model(self.family).model_id
        entry = self.project.model_entry(self.family, model_id)
        self.model_id, self.tier = model_id, entry.tier
        self.model_class, self.task = entry.model_class, entry.task
        self.override = self.project.overrides.get(model_id) or Override()
        # a revision pins Hub models only: tiny and local checkpoints have none
        self.revision = (revision or self.override.revision) if self.tier == "hub" else None
        self.trust_remote_code = self.override.requires_remote_code and allow_remote_code
        self.allow_pickle = allow_pickle  # pickle-only weights load only when asked for
        self.dtype = dtype  # of the model under test; the reference is always fp32
        self.performance = performance  # --performance: measured after the tests
        self.device = "cpu"
        self.loaded: dict[str, Any] = {}
        self.exported: Any = None  # the OpenVINO model (or its export error), once per run
        self._reference: dict[str, Any] | None = None  # fp32 CPU outputs, once per run
        self._source: Source | None = None
        self._trained: tuple[Any, Any] | None = None  # (model, processor) the oracle reuses
        self.captured = drift.Capture()  # the outputs the record's fingerprint keeps
        self.capturing: dict[str, Any] | None = None  # hfmatrix freeze: new golden values
        self._golden: dict[str, Any] | None = None

    # --- the class-specific parts -------------------------------------------------------

    def build_tiny(self, path: Path) -> None:
        """The tiny checkpoint's recipe: save its model and processor into ``path`` (run on
        the reference stack by ``hfmatrix freeze``; every run loads the frozen files)."""
        if self.model_id not in self.tiny_recipes:
            raise NotImplementedError(f"no recipe for {self.model_id} in {type(self).__name__}")
        self.tiny_recipes[self.model_id](path)

    def model_inputs(self, model: Any, processor: Any) -> dict[str, Any]:
        """The forward pass's keyword arguments on the family's fixed inputs: one sample,
        on the device (--performance repeats it to its batch size)."""
        raise NotImplementedError

    def generate_inputs(self, model: Any, processor: Any) -> dict[str, Any] | None:
        """generate()'s keyword arguments on the fixed inputs; None: the class does not
        generate."""
        return None

    def forward(self, model: Any, processor: Any) -> Any:
        """The main output tensor (e.g. logits) of ``model`` on the family's fixed inputs."""
        return model(**self.model_inputs(model, processor)).logits

    def pipeline_checks(self, pipe: Any) -> list[Check]:
        """Checks on the output of ``pipeline(task, model=...)``."""
        raise NotImplementedError

    def from_pretrained_checks(self, model: Any, processor: Any, output: Any) -> list[Check]:
        """Checks on the direct model's ``output`` (from ``forward``)."""
        raise NotImplementedError

    def reference_outputs(self, model: Any, processor: Any) -> dict[str, Any]:
        """What another backend must reproduce: named tensors (compared at the class's
        tolerance) and token ids (exactly): the logits and, for a generating class, its
        greedy ids."""
        outputs = {"logits": self.forward(model, processor)}
        if self.generate_inputs(model, processor) is not None:
            outputs["greedy_ids"] = self.greedy(model, processor)
        return outputs

    def greedy(self, model: Any, processor: Any) -> list[int]:
        """The ids of the ``new_tokens`` tokens fixed-length greedy decoding adds to the
        generate inputs."""
        inputs = self.generate_inputs(model, processor)
        return generation.greedy_new_ids(model, inputs, self.new_tokens)[0]

    def pipeline_output(self, pipe: Any) -> Any:
        """The pipeline's output on the family's fixed inputs (compared across backends)."""
        raise NotImplementedError

    def oracle_checks(self, model: Any, processor: Any) -> list[Check]:
        """The class oracle: what any trained model of the class does on real inputs, as
        ``oracle.bounded`` checks (value and bound recorded) or ``oracle.not_applicable``.
        Run for hub and local models, on the fp32 CPU reference run."""
        raise NotImplementedError

    def published_checks(self, model: Any, processor: Any, values: Published) -> list[Check]:
        """Checks of ``model`` against a well-known checkpoint's ``published`` values."""
        raise NotImplementedError

    def pipeline_parts(self, processor: Any) -> dict[str, Any]:
        """The keyword arguments that give ``pipeline(task, model=<object>)`` its processor."""
        return {"tokenizer": processor}

    def export_openvino(self, ov_class: Any) -> Any:
        """``ov_class`` (an optimum.intel OVModelFor...) exported from the checkpoint and
        compiled for the CPU in f32; never compressed to int8 (optimum-intel's default for
        models over 1B parameters)."""
        return ov_class.from_pretrained(
            self.source.location, export=True, compile=True, device="CPU", load_in_8bit=False,
            ov_config=backends.OPENVINO_F32, **self.load_kwargs(),
        )  # fmt: skip

    def tolerance(self, hardware: str) -> float:
        """The allowed difference from the fp32 CPU reference on ``hardware``."""
        if self.dtype != "float32":
            return HALF_PRECISION_ATOL[self.dtype]
        return (self.openvino_atol or self.atol) if hardware == "openvino" else self.atol

    def golden_check(
        self,
        name: str,
        value: Any,
        atol: float | None = None,
        stored: Any = None,
        key: str | None = None,
    ) -> Check:
        """``value`` against this tiny checkpoint's golden value ``key`` (families/golden/;
        ``name`` unless two tests' checks share that name): exactly, or within ``atol``.
        While ``hfmatrix freeze`` captures the values of a new tiny checkpoint, ``value`` is
        recorded instead, or ``stored`` where given (an Expected: the value with the stacks
        where it is known to differ)."""
        key = key or name
        if self.capturing is not None:
            self.capturing[key] = golden.plain(value if stored is None else stored)
            return Check(name, True, "captured")
        if key not in self.golden:
            where = golden.path(self.project.root, self.family)
            return Check(name, False, f"no golden value for {self.model_id} in {where}: "
                         f"capture it with nox -s freeze -- --family {self.family}")  # fmt: skip
        expected = self.golden[key]
        return equal(name, value, expected) if atol is None else close(name, value, expected, atol)

    @property
    def golden(self) -> dict[str, Any]:
        """This tiny checkpoint's golden values (name -> Expected), from families/golden/."""
        if self._golden is None:
            self._golden = golden.load(self.project.root, self.family, self.model_id)
        return self._golden

    def golden_value(self, name: str, captured: Any) -> Any:
        """Golden value ``name`` as it applies on this stack; while capturing, or where the
        checkpoint has none (its golden_check fails), ``captured``: this run's value."""
        if self.capturing is not None or name not in self.golden:
            return captured
        return self.golden[name].resolve()[0]

    # --- loading ------------------------------------------------------------------------

    @property
    def source(self) -> Source:
        """Where the model loads from; raises Unavailable when it cannot load here."""
        if self._source is None:
            self._source = self._resolve()
        return self._source

    def _resolve(self) -> Source:
        _quiet_transformers()
        if self.tier == "tiny":
            path = checkpoints.tiny_path(self.project.root, checkpoints.tiny_name(self.model_id))
            return Source(self.model_id, "tiny", str(path), origin="frozen files")
        return resolve_hub(self.model_id, self.revision)

    def load_kwargs(self) -> dict[str, Any]:
        """What every from_pretrained/pipeline call of this model passes: the resolved
        revision, and trust_remote_code (always explicit, so never a prompt)."""
        return {"revision": self.source.revision, "trust_remote_code": self.trust_remote_code}

    def weights_kwargs(self) -> dict[str, Any]:
        """What every model load passes for its weights: safetensors only, unless the run
        allows pickle files."""
        return {} if self.allow_pickle else {"use_safetensors": True}

    def pipeline_task(self) -> str:
        """The pipeline task this run uses (a family may choose by transformers version)."""
        return self.task

    def load_pipeline(self, dtype: str = "float32") -> Any:
        import torch
        from transformers import pipeline

        location, task = self.source.location, self.pipeline_task()
        return pipeline(
            task, model=location, device=self.device, dtype=getattr(torch, dtype),
            model_kwargs=self.weights_kwargs(), **self.load_kwargs(),
        )  # fmt: skip

    def load_processor(self) -> Any:
        return self.auto_processor.from_pretrained(self.source.location, **self.load_kwargs())

    def load_model(self, dtype: str = "float32") -> tuple[Any, Any, dict[str, Any]]:
        """(model in ``dtype`` on the device in eval mode, processor, loading info)."""
        import torch

        location, kwargs = self.source.location, self.load_kwargs()
        processor = self.load_processor()
        model, info = self.auto_model.from_pretrained(
            location, output_loading_info=True, dtype=getattr(torch, dtype),
            **self.weights_kwargs(), **kwargs,
        )  # fmt: skip
        self.loaded = {
            "class": type(model).__name__,
            "dtype": str(model.dtype),
            "revision": getattr(model.config, "_commit_hash", None) or self.source.revision,
        }
        return model.to(self.device).eval(), processor, info

    # --- the tests ----------------------------------------------------------------------

    def test_pipeline(self, hardware: str = "cpu") -> list[Check]:
        """Load through ``pipeline(task, model=...)`` and check its output."""
        self.device = hardware_module.device(hardware)
        pipe = self.load_pipeline()
        checks = self.pipeline_checks(pipe)
        self.captured.add("pipeline", lambda: self.pipeline_output(pipe))
        return checks

    def test_from_pretrained(self, hardware: str = "cpu") -> list[Check]:
        """Load with ``from_pretrained``; check the outputs and a save/load round trip."""
        import torch

        self.device = hardware_module.device(hardware)
        model, processor, info = self.load_model()
        checks = [weights_complete(info), *tokenizer_complete(model, processor)]
        with torch.inference_mode():
            output = self.forward(model, processor)
            checks.append(truth("finite", torch.isfinite(output).all(), "non-finite outputs"))
            checks += self.from_pretrained_checks(model, processor, output)
            if self.tier != "hub":  # a second full copy of a 7B+ model is not worth it
                checks.append(self._round_trip(model, processor, output))
            self.captured.add("outputs", lambda: self.reference_outputs(model, processor))
        if self.tier != "tiny":  # the oracle and published values use the same load
            self._trained = (model, processor)
        return checks

    def test_oracle(self, hardware: str = "cpu") -> list[Check]:
        """The class oracle on the family's real inputs (a hub or local model)."""
        import torch

        model, processor = self.trained_model(hardware)
        with torch.inference_mode():
            return self.oracle_checks(model, processor)

    def test_published(self, hardware: str = "cpu") -> list[Check]:
        """The model against the values published for its checkpoint, naming the source."""
        import torch

        values = self.published[self.model_id]
        if values.revision and values.revision != self.source.revision:
            reason = f"published for revision {values.revision}, not {self.source.revision}"
            return [not_applicable("published_values", reason)]
        model, processor = self.trained_model(hardware)
        with torch.inference_mode():
            checks = self.published_checks(model, processor, values)
        for check in checks:
            check.source = check.source or values.source
        return checks

    def trained_model(self, hardware: str) -> tuple[Any, Any]:
        """The (model, processor) test_from_pretrained loaded, else a fresh load."""
        if self._trained is None:
            self.device = hardware_module.device(hardware)
            model, processor, _ = self.load_model()
            self._trained = (model, processor)
        return self._trained

    def reference(self) -> dict[str, Any]:
        """The fp32 CPU reference of this run, from one load freed before any backend
        loads: the pipeline's output, the direct outputs, and the loading info."""
        if self._reference is None:
            import torch
            from transformers import pipeline

            self.device = "cpu"
            model, processor, info = self.load_model()
            with torch.inference_mode():
                outputs = self.reference_outputs(model, processor)
            pipe = pipeline(self.pipeline_task(), model=model, **self.pipeline_parts(processor))
            piped = self.pipeline_output(pipe)
            self._reference = {"pipeline": piped, "outputs": outputs, "info": info}
            del model, pipe
            gc.collect()
        return self._reference

    def test_pipeline_against_reference(self, hardware: str) -> list[Check]:
        """The pipeline on ``hardware`` gives what the reference pipeline gives."""
        reference = self.reference()["pipeline"]
        output = self.pipeline_output(backends.pipeline(self, hardware))
        self.captured.add("pipeline", lambda: output)
        return [agree("pipeline_matches_reference", output, reference, self.tolerance(hardware))]

    def test_from_pretrained_against_reference(self, hardware: str) -> list[Check]:
        """The model on ``hardware`` reproduces the reference's outputs: tensors within the
        class's tolerance, greedy token ids exactly."""
        import torch

        reference = self.reference()
        model, processor = backends.load_model(self, hardware)
        with torch.inference_mode():
            outputs = self.reference_outputs(model, processor)
        self.captured.add("outputs", lambda: outputs)
        atol = self.tolerance(hardware)
        return [weights_complete(reference["info"])] + [
            agree(f"{name}_match_reference", outputs[name], expected, atol)
            for name, expected in reference["outputs"].items()
        ]

    def _round_trip(self, model: Any, processor: Any, output: Any) -> Check:
        with tempfile.TemporaryDirectory(prefix="hfmatrix-roundtrip-") as tmp:
            model.save_pretrained(tmp)
            reloaded = self.auto_model.from_pretrained(
                tmp, dtype=model.dtype, trust_remote_code=self.trust_remote_code
            )
            reloaded = reloaded.to(self.device).eval()
            return close(
                "save_load_round_trip", self.forward(reloaded, processor), output, ROUND_TRIP_ATOL
            )

    def request(self) -> dict[str, Any]:
        """What was asked of this run: a record is only reused (--resume) for the same."""
        request = {
            "dtype": self.dtype,
            "revision": self.revision,
            "trust_remote_code": self.trust_remote_code,
            "allow_pickle": self.allow_pickle,
            "code": results.code_sha256(Path(inspect.getfile(type(self)))),
        }
        if self.performance is not None:  # a record without its figures is not reused
            request["performance"] = self.performance.as_dict()
        if self.tier == "local":  # files that may change under the same path
            request["files"] = checkpoints.stat_sha256(Path(self.model_id))
        return request

    def new_record(self, hardware: str) -> dict[str, Any]:
        """This model's record on ``hardware`` before anything ran."""
        record = results.new_record(
            self.family, self.model_class, self.model_id, self.tier, hardware, self.dtype
        )
        record.update(task=self.task, request=self.request())
        if hardware_module.usable(hardware) is None:  # a result holds for this device only
            record["request"]["device"] = hardware_facts(hardware).get("name")
        return record

    def run_tests(self, hardware: str = "cpu", progress: Progress | None = None) -> dict[str, Any]:
        """Run every test of this model on ``hardware``; return its result record.
        ``progress`` gets the record after each test (a child process saves it)."""
        start = time.perf_counter()
        record = self.new_record(hardware)
        unusable = hardware_module.usable(hardware)
        try:
            outcome = ("skipped", unusable) if unusable else self.blocked() or self.preflight()
            if outcome is None:
                self._run_all(record, hardware, progress or (lambda _: None))
            else:
                record["status"], record["reason"] = outcome
        except Exception as exc:  # e.g. the tiny checkpoint could not be built
            record.update(status="error", reason=f"{type(exc).__name__}: {exc}"[:2000])
        facts = None if unusable else hardware_facts(hardware)
        record["environment"] = results.environment(facts)
        record["duration_s"] = round(time.perf_counter() - start, 3)
        return record

    def _run_all(self, record: dict[str, Any], hardware: str, progress: Progress) -> None:
        hardware_module.strict_fp32(hardware)
        source = self.source
        record["source"] = {
            "location": source.location,
            "origin": source.origin,
            "revision": source.revision,
        }
        record["revision"] = source.revision
        if self.tier == "tiny":
            record["checkpoint"] = checkpoints.describe(Path(source.location))
        tests: dict[str, dict[str, Any]] = {}
        record["tests"] = tests
        reference_run = hardware == "cpu" and self.dtype == "float32"
        plan = (
            [("pipeline", self.test_pipeline), ("from_pretrained", self.test_from_pretrained)]
            if reference_run
            else [
                ("pipeline", self.test_pipeline_against_reference),
                ("from_pretrained", self.test_from_pretrained_against_reference),
            ]
        )
        if reference_run and self.tier != "tiny":  # what a trained model of the class does
            plan.append(("oracle", self.test_oracle))
            if self.model_id in self.published:
                plan.append(("published", self.test_published))
        with one_thread_if(self.tier == "tiny"):
            for name, test in plan:
                tests[name] = run_one(test, hardware)
                if name == "published":
                    tests[name]["source"] = self.published[self.model_id].source
                progress(record)
        self._trained = None
        gc.collect()
        record["pipeline_task"] = self.pipeline_task()
        record["loaded"] = self.loaded
        record["revision"] = self.loaded.get("revision") or source.revision
        record["status"], record["reason"] = verdict(tests)
        every_check = [Check(**c) for t in tests.values() for c in t.get("checks", [])]
        record["expectations"] = {
            f"{name}.{check['name']}": check["expectation"]
            for name, test in tests.items()
            for check in test.get("checks", [])
            if check.get("expectation")
        }
        if record["status"] != "passed":  # a verdict names the stack it holds for
            record["reason"] = f"{record['reason']} [{stack_words()}]"
        if reference_run:
            reference = "golden values" if self.tier == "tiny" else "self-consistency"
        else:
            reference = backends.REFERENCE
        record["numerics"] = numerics(every_check, reference)
        if not reference_run:  # the tolerance used, even when no comparison was made
            record["numerics"].setdefault("atol", self.tolerance(hardware))
        ids = [c.passed for c in every_check if c.name.endswith("ids_match_reference")]
        if ids:
            record["numerics"]["greedy_ids_match"] = all(ids)
        record["fingerprint"] = self.captured.block(record, self.atol)
        if self.performance is not None:  # saved first: the verdict stands if it dies
            record["performance"] = {"settings": self.performance.as_dict(), "pending": True}
            progress(record)
            record["performance"] = self.measure_performance(hardware, self.performance)
            progress(record)

    def measure_performance(self, hardware: str, settings: PerfSettings) -> dict[str, Any]:
        """The performance block: each target measured on a fresh load of the model (on
        openvino, load_model includes the export), with what the tests held freed first; a
        failure is named in the block beside the targets measured before it."""
        import torch

        self.exported, self._reference = None, None
        gc.collect()
        if hardware == "cuda":
            torch.cuda.empty_cache()

        def load() -> tuple[Any, Any]:
            return backends.load_model(self, hardware)

        device = hardware_module.device(hardware)
        return perf.measure(load, self.model_inputs, self.generate_inputs, settings, device)

    def blocked(self) -> tuple[str, str] | None:
        """(status, reason) when policy or availability stops this model, else None.
        For a hub model this needs neither torch nor transformers."""
        if self.override.requires_remote_code and not self.trust_remote_code:
            return "skipped", f"requires remote code (overrides.json); {REMOTE_CODE_POLICY}"
        try:
            source = self.source
        except Unavailable as exc:
            return "skipped", str(exc)
        pickles = [] if self.allow_pickle else pickle_weights(source.file_names())
        if pickles:
            named = ", ".join(pickles[:4]) + (" ..." if len(pickles) > 4 else "")
            return "skipped", f"only pickle weights ({named}), no safetensors; {PICKLE_POLICY}"
        return None

    def preflight(self) -> tuple[str, str] | None:
        """(status, reason) when the model's config rules its tests out, else None."""
        if self.tier == "tiny" or self.trust_remote_code:
            return None
        return config_problem(self.source, self.auto_model, self.family, self.model_class)


def config_problem(
    source: Source, auto_model: Any, family: str, model_class: str
) -> tuple[str, str] | None:
    """Why a checkpoint's config.json keeps it out of this family, or None. Reads the
    config as data: no code of the model runs."""
    from transformers import PretrainedConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    config, _ = PretrainedConfig.get_config_dict(source.location, revision=source.revision)
    model_type = config.get("model_type")
    if not config:
        return "error", f"no config.json in {source.location}"
    if model_type not in CONFIG_MAPPING:
        if config.get("auto_map"):
            why = f"its config.json asks for its own code (auto_map, model_type {model_type!r})"
            return "skipped", f"{why}; {REMOTE_CODE_POLICY}"
        return "error", f"config.json: model_type {model_type!r} is unknown to transformers"
    if CONFIG_MAPPING[model_type] not in auto_model._model_mapping:
        kind = ", ".join(config.get("architectures") or []) or model_type
        return "error", (
            f"not a {family}-family model: config.json is model_type {model_type!r} ({kind}), "
            f"which {auto_model.__name__} does not load; the family tests {model_class}"
        )
    return None


def weights_complete(info: dict[str, Any]) -> Check:
    """Fails when weights were missing from the checkpoint (freshly initialised instead)."""
    missing = sorted(info.get("missing_keys") or [])
    unexpected = sorted(info.get("unexpected_keys") or [])
    mismatched = [str(k) for k in info.get("mismatched_keys") or []]
    detail = "; ".join(
        f"{label} ({len(keys)}): {', '.join(map(str, keys[:8]))}{' ...' if len(keys) > 8 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mismatched", mismatched),
        )
        if keys
    )
    return Check("weights_complete", not missing and not mismatched, detail)


def tokenizer_complete(model: Any, processor: Any) -> list[Check]:
    """A tokenizer (alone or in a processor) must cover the model's vocabulary: one built
    from missing or partial files loads with a handful of tokens and no error."""
    from transformers import PreTrainedTokenizerBase

    tokenizer = getattr(processor, "tokenizer", processor)
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        return []
    vocab_size = getattr(model.config.get_text_config(), "vocab_size", None) or 0
    detail = f"{len(tokenizer)} tokens for {vocab_size} embeddings: tokenizer files missing?"
    return [truth("tokenizer_complete", len(tokenizer) >= 0.9 * vocab_size, detail)]


def run_one(test: Callable[[str], list[Check]], hardware: str) -> dict[str, Any]:
    """Run one test; an exception becomes an ``error`` entry with its message, not a crash."""
    start = time.perf_counter()
    try:
        checks = test(hardware)
    except Exception as exc:  # a model's failure is a result
        tail = traceback.format_exc().strip().splitlines()[-12:]
        return {
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}"[:2000],
            "traceback": tail,
            "duration_s": round(time.perf_counter() - start, 3),
            "checks": [],
        }
    failed = [c for c in checks if not c.passed]
    return {
        "status": "failed" if failed else "passed",
        "duration_s": round(time.perf_counter() - start, 3),
        "checks": [c.as_dict() for c in checks],
    }


def verdict(tests: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The record's status and reason from its tests."""
    reasons = []
    for name, test in tests.items():
        if test["status"] == "error":
            reasons.append(f"{name}: {test['error'].splitlines()[0][:300]}")
        for check in test.get("checks", []):
            if not check["passed"]:
                reasons.append(f"{name}.{check['name']}: {check.get('detail', 'failed')}")
    statuses = {test["status"] for test in tests.values()}
    for status in ("error", "failed", "passed"):
        if status in statuses:
            return status, "; ".join(reasons)
    return "skipped", "; ".join(test.get("reason", "") for test in tests.values())


def hardware_facts(hw: str) -> dict[str, Any]:
    return {"hardware": hw, **hardware_module.device_facts(hw)}


@contextlib.contextmanager
def one_thread_if(condition: bool) -> Iterator[None]:
    """Run torch on one thread (restored afterwards): tiny models only lose to threading."""
    import torch

    previous = torch.get_num_threads()
    if condition:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
