"""What the family tests share: import a family module, run a model through it, read the
checks of its record, and perturb the files of a tiny checkpoint."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hfmatrix import checkpoints, compat

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("bert", "gpt", "t5", "llama", "vit", "whisper", "sam", "llava")
NEEDS = {"vit": ("PIL",), "sam": ("torchvision",)}  # beyond torch
REVISION = "0123456789abcdef0123456789abcdef01234567"  # of a planted HF-cache snapshot
FIRST = None  # as an index for perturb_weight: the tensor's first element


def import_family(name: str) -> ModuleType:
    """families/test_hf_<name>.py, imported as pytest imports it; skips without its deps."""
    for module in ("torch", *NEEDS.get(name, ())):
        pytest.importorskip(module)
    sys.path.insert(0, str(ROOT / "families"))
    try:
        return importlib.import_module(f"test_hf_{name}")
    finally:
        sys.path.remove(str(ROOT / "families"))


def family_test(family: ModuleType, model_id: str = "tiny", project: Any = None) -> Any:
    """The family's FamilyTest subclass, for one model."""
    [test] = [
        value
        for value in vars(family).values()
        if isinstance(value, type)
        and value.__module__ == family.__name__
        and hasattr(value, "run_tests")
    ]
    return test(model_id, project)


def run(family: ModuleType, model_id: str = "tiny", hardware: str = "cpu", project=None) -> dict:
    """The result record of one model on one backend."""
    return family_test(family, model_id, project).run_tests(hardware)


def check_names(record: dict, passed: bool | None = None) -> set[str]:
    """The names (test.check) of the record's checks, or of its passed or failed ones."""
    return {
        f"{test}.{check['name']}"
        for test, result in record["tests"].items()
        for check in result.get("checks", [])
        if passed is None or check["passed"] == passed
    }


def failed_checks(record: dict) -> set[str]:
    return check_names(record, passed=False)


def fails(family: ModuleType, *expected: str) -> set[str]:
    """Run the tiny checkpoint: it must fail, at least these checks; its failed checks."""
    record = run(family)
    assert record["status"] == "failed", record["reason"]
    failed = failed_checks(record)
    assert set(expected) <= failed
    return failed


def skipped_quickly(family: ModuleType, model_id: str) -> str:
    """Run a model that cannot load here: it must be skipped, within 10 s; the reason."""
    start = time.perf_counter()
    record = run(family, model_id)
    assert record["status"] == "skipped", record["reason"]
    assert time.perf_counter() - start < 10
    return record["reason"]


def tiny_dir(family: ModuleType) -> Path:
    """The family's frozen tiny checkpoint (where runs of "tiny" load it from)."""
    return checkpoints.tiny_path(family_test(family).project.root, family_test(family).family)


def rebuild(family: ModuleType, directory: Path) -> None:
    """Replace ``directory``'s files with the family's recipe as it is now (frozen as
    hfmatrix freeze writes them)."""
    checkpoints.freeze(lambda path: (family_test(family).build_tiny(path), compat.portable(path)),
                       directory)  # fmt: skip


def edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    """Rewrite a JSON file after ``edit`` changed its data in place."""
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def edit_weights(directory: Path, edit: Callable[[dict], Any]) -> None:
    """Rewrite ``directory``/model.safetensors after ``edit`` changed its tensors in place."""
    import torch
    from safetensors.torch import load_file, save_file

    weights = directory / "model.safetensors"
    tensors = load_file(weights)
    with torch.no_grad():
        edit(tensors)
    save_file(tensors, weights, metadata={"format": "pt"})


def perturb_weight(directory: Path, parameter: str, index: Any = 0, delta: float = 0.05) -> None:
    """Add ``delta`` to ``parameter[index]`` (a row, or one element; FIRST: the first element)."""

    def bump(tensors: dict) -> None:
        if index is FIRST:
            tensors[parameter].view(-1)[0] += delta
        else:
            tensors[parameter][index] += delta

    edit_weights(directory, bump)


def shuffle_weights(directory: Path, seed: int = 0) -> None:
    """Scramble every tensor of the checkpoint: its elements permuted, so each keeps its
    values and their distribution but none of what training put where."""
    import torch

    generator = torch.Generator().manual_seed(seed)

    def scramble(tensors: dict) -> None:
        for name, tensor in tensors.items():
            flat = tensor.reshape(-1)
            tensors[name] = (
                flat[torch.randperm(flat.numel(), generator=generator)]
                .reshape(tensor.shape)
                .contiguous()
            )

    edit_weights(directory, scramble)


def permute_vocabulary(directory: Path, seed: int = 0) -> None:
    """Give the tokenizer's ordinary tokens each other's ids (tokenizer.json): text still
    tokenizes into the same pieces, the model sees the wrong ids. Added (special) tokens keep
    theirs."""
    import random

    def permute(data: dict) -> None:
        fixed = {token["id"] for token in data.get("added_tokens", [])}
        vocab = data["model"]["vocab"]
        rng = random.Random(seed)
        if isinstance(vocab, dict):  # WordPiece, BPE: token -> id
            movable = sorted(i for i in vocab.values() if i not in fixed)
            shuffled = rng.sample(movable, len(movable))
            moved = dict(zip(movable, shuffled, strict=True))
            data["model"]["vocab"] = {t: moved.get(i, i) for t, i in vocab.items()}
        else:  # Unigram: [piece, score] by id
            movable = [i for i in range(len(vocab)) if i not in fixed]
            shuffled = rng.sample(movable, len(movable))
            entries = list(vocab)
            for target, origin in zip(movable, shuffled, strict=True):
                entries[target] = vocab[origin]
            data["model"]["vocab"] = entries
            unk = data["model"].get("unk_id")
            if unk is not None and unk not in fixed:
                data["model"]["unk_id"] = movable[shuffled.index(unk)]

    edit_json(directory / "tokenizer.json", permute)


def renormalise(directory: Path) -> None:
    """The image processor's normalisation replaced by the classic mistake of the 0-255
    ImageNet statistics applied to pixels already rescaled to [0, 1]."""

    def wrong(data: dict) -> None:
        config = data.get("image_processor", data)
        config["image_mean"] = [123.675, 116.28, 103.53]
        config["image_std"] = [58.395, 57.12, 57.375]

    edit_json(directory / "preprocessor_config.json", wrong)


def imagenet_head(directory: Path, labels: dict[int, str], seed: int = 0) -> None:
    """Give an image classifier checkpoint ImageNet-1k's label count: id2label and label2id
    with ``labels`` at their indices and "class <i>" elsewhere (config.json), and a
    1000-row classifier (model.safetensors), seeded random at the scale of the old one."""
    import torch

    id2label = {str(i): labels.get(i, f"class {i}") for i in range(1000)}

    def relabel(config: dict) -> None:
        config["id2label"] = id2label
        config["label2id"] = {label: int(i) for i, label in id2label.items()}
        config.pop("num_labels", None)

    def widen(tensors: dict) -> None:
        generator = torch.Generator().manual_seed(seed)
        for name in ("classifier.weight", "classifier.bias"):
            old = tensors[name]
            shape = (1000, *old.shape[1:])
            tensors[name] = torch.randn(shape, generator=generator) * old.std() + old.mean()

    edit_json(directory / "config.json", relabel)
    edit_weights(directory, widen)


def plant_hf_snapshot(hub_cache: Path, model_id: str, files: Path) -> Path:
    """Copy ``files`` into the HF cache at ``hub_cache`` as the main snapshot of ``model_id``."""
    repo = hub_cache / f"models--{model_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    shutil.copytree(files, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


def records_by_model(results_dir: Path, session: str = "*") -> dict[str, dict]:
    """model id -> record, for the records under ``results_dir``/raw/<session>/."""
    paths = sorted((results_dir / "raw").glob(f"{session}/*.json"))
    return {record["model_id"]: record for record in map(read_json, paths)}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
