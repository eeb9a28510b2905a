"""Tiny checkpoints: frozen in the repository (tiny/<family>/), regenerated from their
recipe with seeded weights on the reference stack, hashed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TINY_DIR = "tiny"  # the project's frozen tiny checkpoints: tiny/<name>/ for tiny-<name>


def tiny_root(project_root: Path) -> Path:
    """Where the frozen tiny checkpoints live: ``tiny/`` in the project."""
    return project_root / TINY_DIR


def tiny_name(model_id: str) -> str:
    """The directory name of tiny checkpoint ``model_id``: tiny-roberta -> roberta."""
    return model_id.removeprefix("tiny-")


def tiny_path(project_root: Path, name: str) -> Path:
    """The frozen files of tiny checkpoint tiny-<name>; missing files are an error that says
    how to make them."""
    path = tiny_root(project_root) / name
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the tiny checkpoint tiny-{name} is missing from {path}: regenerate it on the "
            f"reference stack with `nox -s freeze -- --model tiny-{name}`"
        )
    return path


def freeze(build: Callable[[Path], None], target: Path) -> None:
    """Write the files ``build(dir)`` makes into ``target``, replacing what was there.

    The build goes to a temporary sibling directory renamed into place complete, so a
    half-written checkpoint is never left behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    old = target.with_name(f".{target.name}.old")
    try:
        build(staging)
        staging.chmod(0o755)
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def directory_sha256(path: Path) -> str:
    """A content hash over the relative names and bytes of every file in ``path``."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def stat_sha256(path: Path) -> str:
    """A quick hash of the names, sizes and modification times of the files in ``path``."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(
            f"{file.relative_to(path).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()[:16]


def describe(path: Path) -> dict[str, Any]:
    """The checkpoint facts a record carries: where it is and what its bytes hash to."""
    files = {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }
    return {"path": str(path), "sha256": directory_sha256(path), "files": files}


def tiny_recipe(
    model_class: Any, config: Any, processor: Callable[[], Any], seed: int, std: float
) -> Callable[[Path], None]:
    """A tiny checkpoint's recipe: ``model_class(config)`` with seeded weights
    (seed_parameters) and ``processor()`` (its tokenizer or processor), saved into a directory."""

    def build(path: Path) -> None:
        model = model_class(config)
        seed_parameters(model, seed, std)
        model.save_pretrained(path)
        processor().save_pretrained(path)

    return build


def seed_parameters(model: Any, seed: int, std: float) -> None:
    """Fill every parameter from a generator seeded by (seed, parameter name).

    Independent of transformers' own initialisation, so the weights (and the golden
    values computed from them) only change when the recipe does. Normalisation weights
    are 1 + noise, as in a trained network; tied parameters are filled once.
    """
    import torch

    norms = norm_weights(model)
    with torch.no_grad():
        for name, param in model.named_parameters():
            key = hashlib.sha256(f"{seed}:{name}".encode()).digest()
            generator = torch.Generator().manual_seed(int.from_bytes(key[:8], "little"))
            values = torch.randn(param.shape, generator=generator, dtype=torch.float32) * std
            if param.dim() == 1 and name in norms:
                values += 1.0
            param.copy_(values.to(param.dtype))


def norm_weights(model: Any) -> set[str]:
    """Names of normalisation weights: of LayerNorm/*Norm modules (GPT-2 calls them ln_*),
    or named *norm*.weight."""
    import torch

    names = {name for name, _ in model.named_parameters()
             if "norm" in name.lower() and name.endswith("weight")}  # fmt: skip
    for prefix, module in model.named_modules():
        if isinstance(module, torch.nn.LayerNorm) or type(module).__name__.endswith("Norm"):
            names.add(f"{prefix}.weight" if prefix else "weight")
    return names


def weights_sha256(model: Any) -> str:
    """A hash of every tensor of ``model.state_dict()`` (name, dtype, shape, bytes), as loaded:
    independent of the file format, sensitive to any weight."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}\0".encode())
        values = flat.float() if flat.is_floating_point() else flat
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()


def vocab_sha256(tokenizer: Any) -> str:
    """A hash of a tokenizer's vocabulary (token -> id), independent of its file format."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()


def byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, in byte order (its bytes_to_unicode):
    the base of a byte-level BPE vocabulary."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


def grown_bpe(
    base: list[str], words: list[str], prefix: str = ""
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A small BPE vocabulary (token -> id) and its merges: the ``base`` tokens, then every
    word (after ``prefix``, e.g. "▁" or "Ġ") grown one character at a time, left to right,
    so each word encodes as one token whatever a trainer would have tied on."""
    vocab: dict[str, int] = {}
    for token in base:
        vocab.setdefault(token, len(vocab))
    merges = []
    for word in words:
        piece, rest = (prefix, word) if prefix else (word[0], word[1:])
        for character in rest:
            if piece + character not in vocab:
                vocab[piece + character] = len(vocab)
                merges.append((piece, character))
            piece += character
    return vocab, merges
