"""Where transformers 4.x and 5.x differ in API, the difference lives here, once: the
checkpoint files every stack reads, the sequence-to-sequence pipeline task, and
post-processing inputs that changed type."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SEQ2SEQ_TASK = "text2text-generation"  # transformers 4; removed in 5
SEQ2SEQ_FALLBACK = "text-generation"  # transformers 5 runs encoder-decoders through it
PROCESSOR_PARTS = ("image_processor", "feature_extractor")
# Weight names transformers 5 saves differently from the Hub's checkpoints, by model_type:
# (prefix saved, prefix on the Hub). Llava's CLIP tower is a CLIPVisionModel on the Hub.
HUB_WEIGHT_NAMES = {"llava": [("vision_tower.", "vision_tower.vision_model.")]}


def seq2seq_task() -> str:
    """The pipeline task for an encoder-decoder text model on this stack."""
    from transformers.pipelines import SUPPORTED_TASKS

    return SEQ2SEQ_TASK if SEQ2SEQ_TASK in SUPPORTED_TASKS else SEQ2SEQ_FALLBACK


def portable(path: Path) -> None:
    """Rewrite the files transformers 5 saved in ``path`` into the layout of the Hub's
    checkpoints, which every stack reads: a list of extra special tokens is
    ``additional_special_tokens`` (4.x takes ``extra_special_tokens`` as a dict only), and a
    processor's image processor or feature extractor is ``preprocessor_config.json``
    (4.x does not read them nested in ``processor_config.json``)."""
    tokenizer_config = path / "tokenizer_config.json"
    if tokenizer_config.is_file():
        _rewrite(tokenizer_config, _portable_tokenizer_config)
    _hub_weight_names(path)
    processor_config = path / "processor_config.json"
    if processor_config.is_file():
        config = _read(processor_config)
        parts = [config.pop(part) for part in PROCESSOR_PARTS if isinstance(config.get(part), dict)]
        if parts:
            _write(path / "preprocessor_config.json", parts[0])
            _write(processor_config, config)


def save_buffers(model: Any, path: Path, suffix: str, hub_suffix: str) -> None:
    """Add ``model``'s buffers named ``*suffix`` to the weights saved in ``path``, named
    ``*hub_suffix`` and shaped as the Hub's checkpoints have them: transformers 5 leaves out
    buffers it recomputes (Swin's relative_position_index, which it keeps flat; 4.x keeps
    it as a tokens x tokens matrix) and ignores them on loading; 4.x reports them missing
    from a checkpoint without them."""
    from safetensors.torch import load_file, save_file

    weights = path / "model.safetensors"
    tensors = load_file(weights)
    for name, buffer in model.named_buffers():
        if name.endswith(suffix):
            side = math.isqrt(buffer.numel())
            square = buffer.reshape(side, side) if buffer.dim() == 1 else buffer
            tensors.setdefault(name[: -len(suffix)] + hub_suffix, square.cpu().contiguous())
    save_file(tensors, weights, metadata={"format": "pt"})


def _hub_weight_names(path: Path) -> None:
    """Rename model.safetensors' tensors to the Hub's names for the config's model_type."""
    renames = HUB_WEIGHT_NAMES.get(_read(path / "config.json").get("model_type"), [])
    weights = path / "model.safetensors"
    if not renames or not weights.is_file():
        return
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    for saved, hub in renames:
        tensors = {
            hub + name[len(saved) :] if name.startswith(saved) and not name.startswith(hub)
            else name: tensor
            for name, tensor in tensors.items()
        }  # fmt: skip
    save_file(tensors, weights, metadata={"format": "pt"})


def _portable_tokenizer_config(config: dict[str, Any]) -> None:
    extra = config.get("extra_special_tokens")
    if isinstance(extra, list):
        del config["extra_special_tokens"]
        if extra:
            config["additional_special_tokens"] = extra


def _rewrite(path: Path, edit: Any) -> None:
    config = _read(path)
    edit(config)
    _write(path, config)


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def as_tensor(value: Any) -> Any:
    """A tensor from a tensor, an array or a list (4.x processors return some sizes as
    numpy arrays where 5.x returns tensors)."""
    import torch

    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def image_features(output: Any) -> Any:
    """A vision-language model's ``get_image_features`` result as the features themselves:
    5.x wraps them in an output object (``pooler_output``), 4.x returns them."""
    return getattr(output, "pooler_output", output)
