"""Fault-injection fixtures: BERT-class checkpoints whose own code (auto_map, remote code)
hangs, crashes, exits, allocates without end or leaves a marker; corrupted checkpoints; and
a copy of the project whose overrides.json says which of them may run their code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from families_helpers import ROOT

FAULT_MODULE = '''"""A BertForMaskedLM that misbehaves on purpose (a fault-injection fixture)."""
import ctypes
import os
import signal
import time
from pathlib import Path

from transformers import BertConfig, BertForMaskedLM

INSTANCES = []


class FaultConfig(BertConfig):
    model_type = "hfmatrix-fault"

    def __init__(self, fault="none", fault_on_instance=1, marker="", **kwargs):
        super().__init__(**kwargs)
        self.fault, self.fault_on_instance, self.marker = fault, fault_on_instance, marker


class FaultModel(BertForMaskedLM):
    config_class = FaultConfig

    def __init__(self, config):
        super().__init__(config)
        INSTANCES.append(self)
        self.instance = len(INSTANCES)

    def forward(self, *args, **kwargs):
        if self.config.marker:
            Path(self.config.marker).write_text("the model's own code ran")
        if self.instance >= self.config.fault_on_instance:
            misbehave(self.config.fault)
        return super().forward(*args, **kwargs)


def misbehave(fault):
    if fault == "hang":
        time.sleep(3600)
    elif fault == "segfault":
        ctypes.string_at(0)
    elif fault == "exit":
        os._exit(7)
    elif fault == "sigkill":  # what the kernel's out-of-memory killer does
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault == "allocate":
        hog = []
        while True:
            hog.append(b"\\x01" * (64 << 20))  # written, so resident
'''


def fault_checkpoint(
    tiny_bert: Path, dest: Path, fault: str, on_instance: int = 1, marker: Path | None = None
) -> Path:
    """A copy of the tiny BERT checkpoint whose config maps to FAULT_MODULE's classes.
    ``on_instance``: the first model instance that misbehaves (2: the pipeline test's model
    behaves, the from_pretrained test's does not)."""
    shutil.copytree(tiny_bert, dest, ignore=shutil.ignore_patterns(".complete"))
    (dest / "modeling_fault.py").write_text(FAULT_MODULE)
    config = json.loads((dest / "config.json").read_text())
    config.update(
        model_type="hfmatrix-fault",
        architectures=["FaultModel"],
        auto_map={
            "AutoConfig": "modeling_fault.FaultConfig",
            "AutoModelForMaskedLM": "modeling_fault.FaultModel",
        },
        fault=fault,
        fault_on_instance=on_instance,
        marker=str(marker or ""),
    )
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    return dest


def truncated_checkpoint(tiny: Path, dest: Path) -> Path:
    """A copy of a tiny checkpoint whose model.safetensors lost its second half."""
    shutil.copytree(tiny, dest, ignore=shutil.ignore_patterns(".complete"))
    weights = dest / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    return dest


def project_copy(dest: Path, overrides: dict[str, dict] | None = None) -> Path:
    """A copy of the project's sources (to break on purpose), with ``overrides`` as its
    overrides.json when given."""
    dest.mkdir(parents=True)
    for name in ("noxfile.py", "pyproject.toml", "README.md", "models.json", "overrides.json"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("src", "families", "env_specs", "tiny"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    if overrides is not None:
        (dest / "overrides.json").write_text(json.dumps(overrides, indent=2))
    return dest


def trusted(*directories: Path) -> dict[str, dict]:
    """overrides.json entries that mark local checkpoints requires_remote_code."""
    return {str(d.resolve()): {"requires_remote_code": True} for d in directories}
