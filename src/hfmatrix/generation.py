"""Greedy generation with a fixed length, for exact token-id checks."""

from __future__ import annotations

from typing import Any


def fixed_length_greedy(new_tokens: int) -> dict[str, Any]:
    """generate() arguments: greedy, exactly ``new_tokens`` new tokens (EOS suppressed until
    then by ``min_new_tokens``), so the golden ids have a fixed length."""
    return {
        "do_sample": False,
        "num_beams": 1,
        "max_new_tokens": new_tokens,
        "min_new_tokens": new_tokens,
    }


def greedy_new_ids(model: Any, inputs: dict[str, Any], new_tokens: int) -> list[list[int]]:
    """The ids of the ``new_tokens`` tokens greedy decoding adds, per batch row."""
    import torch

    with torch.inference_mode():
        output = model.generate(**inputs, **fixed_length_greedy(new_tokens))
    if model.config.is_encoder_decoder:
        return output[:, -new_tokens:].tolist()
    return output[:, inputs["input_ids"].shape[1] :].tolist()
