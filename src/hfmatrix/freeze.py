"""``hfmatrix freeze``: the tiny checkpoints' recipes run on the reference stack, their files
written to tiny/<name>/ and the golden values of a checkpoint that has none captured, or the
files compared with the committed ones (``--check``)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
from pathlib import Path
from typing import Any

from hfmatrix import checkpoints, compat, golden
from hfmatrix.errors import UserError
from hfmatrix.project import Project


def family_test(project: Project, family: str, model_id: str = "tiny") -> Any:
    """The FamilyTest subclass of families/test_hf_<family>.py, for tiny ``model_id``."""
    path = project.root / "families" / f"test_hf_{family}.py"
    name = f"test_hf_{family}"
    module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) != str(path):
        if module is not None:  # another project's file of that name: leave it in place
            name = f"{name}_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # where inspect finds the module of its classes
        spec.loader.exec_module(module)
    from hfmatrix.harness import FamilyTest

    [test] = [
        value for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, FamilyTest)
        and value.__module__ == module.__name__
    ]  # fmt: skip
    return test(model_id, project)


def identity(test: Any, path: Path) -> dict[str, str]:
    """What must not change between the recipe and the frozen files: the weights as loaded,
    and the tokenizer's vocabulary or the processor's settings."""
    import json

    from hfmatrix.harness import _quiet_transformers

    _quiet_transformers()
    model = test.auto_model.from_pretrained(path)
    processor = test.auto_processor.from_pretrained(path)
    tokenizer = getattr(processor, "tokenizer", processor)
    found = {"weights_sha256": checkpoints.weights_sha256(model)}
    if hasattr(tokenizer, "get_vocab"):
        found["vocab_sha256"] = checkpoints.vocab_sha256(tokenizer)
    settings = getattr(processor, "image_processor", None) or getattr(
        processor, "feature_extractor", None
    )
    if settings is None and not hasattr(tokenizer, "get_vocab"):
        settings = processor
    if settings is not None:
        found["processor"] = json.dumps(settings.to_dict(), sort_keys=True, default=str)
    return found


def differences(project: Project, family: str, model_id: str) -> dict[str, tuple[str, str]]:
    """{what: (recipe, frozen)} for each way the committed files of tiny ``model_id`` differ
    from the recipe's output on this stack; empty when they are the same."""
    test = family_test(project, family, model_id)
    frozen = checkpoints.tiny_path(project.root, checkpoints.tiny_name(model_id))
    with tempfile.TemporaryDirectory(prefix=f"hfmatrix-{model_id}-recipe-") as tmp:
        recipe(test, Path(tmp))
        built = identity(test, Path(tmp))
    committed = identity(test, frozen)
    return {
        key: (built.get(key, "-"), committed.get(key, "-"))
        for key in sorted({*built, *committed})
        if built.get(key) != committed.get(key)
    }


def write(project: Project, family: str, model_id: str) -> Path:
    """Run tiny ``model_id``'s recipe and freeze its files into tiny/<name>/."""
    target = checkpoints.tiny_root(project.root) / checkpoints.tiny_name(model_id)
    checkpoints.freeze(lambda path: recipe(family_test(project, family, model_id), path), target)
    return target


def recipe(test: Any, path: Path) -> None:
    """The tiny checkpoint's build_tiny, its files written in the layout every stack reads."""
    from hfmatrix.harness import _quiet_transformers

    _quiet_transformers()
    test.build_tiny(path)
    compat.portable(path)


def capture_golden(project: Project, family: str, model_id: str) -> Path | None:
    """Capture and store the golden values of tiny ``model_id`` from its frozen files on this
    stack (cpu, fp32), where it has none; None where it has them. Its other checks must
    pass first: a checkpoint whose own outputs disagree gets no golden values."""
    if model_id in golden.read(project.root, family):
        return None
    test = family_test(project, family, model_id)
    test.capturing = {}
    record = test.run_tests("cpu")
    if record["status"] != "passed":
        raise UserError(f"{model_id}: its run {record['status']} before golden values could be "
                        f"captured: {record['reason']}")  # fmt: skip
    return golden.add(project.root, family, model_id, test.capturing)
