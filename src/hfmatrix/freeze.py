"""``hfmatrix freeze``: the tiny checkpoints' recipes run on the reference stack, their files
written to tiny/<family>/, or compared with the committed ones (``--check``)."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

from hfmatrix import checkpoints, compat
from hfmatrix.project import Project


def family_test(project: Project, family: str) -> Any:
    """The FamilyTest subclass of families/test_hf_<family>.py, for its tiny model."""
    path = project.root / "families" / f"test_hf_{family}.py"
    spec = importlib.util.spec_from_file_location(f"test_hf_{family}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from hfmatrix.harness import FamilyTest

    [test] = [
        value for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, FamilyTest)
        and value.__module__ == module.__name__
    ]  # fmt: skip
    return test("tiny", project)


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


def differences(project: Project, family: str) -> dict[str, tuple[str, str]]:
    """{what: (recipe, frozen)} for each way the committed files differ from the recipe's
    output on this stack; empty when they are the same."""
    test = family_test(project, family)
    frozen = checkpoints.tiny_path(project.root, family)
    with tempfile.TemporaryDirectory(prefix=f"hfmatrix-{family}-recipe-") as tmp:
        recipe(project, family, Path(tmp))
        built = identity(test, Path(tmp))
    committed = identity(test, frozen)
    return {
        key: (built.get(key, "-"), committed.get(key, "-"))
        for key in sorted({*built, *committed})
        if built.get(key) != committed.get(key)
    }


def write(project: Project, family: str) -> Path:
    """Run the family's recipe and freeze its files into tiny/<family>/."""
    target = checkpoints.tiny_root(project.root) / family
    checkpoints.freeze(lambda path: recipe(project, family, path), target)
    return target


def recipe(project: Project, family: str, path: Path) -> None:
    """The family's build_tiny, its files written in the layout every stack reads."""
    from hfmatrix.harness import _quiet_transformers

    _quiet_transformers()
    family_test(project, family).build_tiny(path)
    compat.portable(path)
