"""Greedy generation with a fixed length, for exact token-id checks."""

from __future__ import annotations

from typing import Any

from hfmatrix.expectations import Differs, Expected, expect

# Before transformers 5.9, text-generation (return_full_text=False) cut the decoded prompt's
# length off the decoding of prompt + new tokens, so a sentencepiece word's "▁" stayed a
# leading space; 5.9 decodes the new tokens alone.
PROMPT_CUT_STACK = "transformers<5.9"
PROMPT_CUT_REASON = (
    "text-generation cut the decoded prompt off the whole decoding (5.9 decodes the new "
    "tokens alone)"
)


def prompt_cut(value: Any) -> Differs:
    """``value`` is what the text-generation pipeline's text is before transformers 5.9."""
    return Differs(PROMPT_CUT_STACK, value, PROMPT_CUT_REASON)


def pipeline_new_text(tokenizer: Any, prompt_ids: list[int], new_ids: list[int]) -> Expected:
    """The text the text-generation pipeline gives for ``new_ids`` after ``prompt_ids``."""

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True)

    whole = decode([*prompt_ids, *new_ids])
    return expect(decode(new_ids), prompt_cut(whole[len(decode(prompt_ids)) :]))


def fixed_length_greedy(new_tokens: int) -> dict[str, Any]:
    """generate() arguments: plain greedy, exactly ``new_tokens`` new tokens (EOS suppressed
    until then by ``min_new_tokens``), so the golden ids have a fixed length. Penalties and
    forced tokens a checkpoint's generation_config may carry are switched off, so each new
    token is the argmax of the logits (EOS aside)."""
    return {
        "do_sample": False,
        "num_beams": 1,
        "max_new_tokens": new_tokens,
        "min_new_tokens": new_tokens,
        "repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "bad_words_ids": None,
        "forced_bos_token_id": None,
        "forced_eos_token_id": None,
    }


def greedy_new_ids(model: Any, inputs: dict[str, Any], new_tokens: int) -> list[list[int]]:
    """The ids of the ``new_tokens`` tokens greedy decoding adds, per batch row."""
    import torch

    with torch.inference_mode():
        output = model.generate(**inputs, **fixed_length_greedy(new_tokens))
    if model.config.is_encoder_decoder:
        return output[:, -new_tokens:].tolist()
    return output[:, inputs["input_ids"].shape[1] :].tolist()


def mask_eos(logits: Any, generation_config: Any) -> Any:
    """A copy of ``logits`` with the EOS ids at -inf, as ``min_new_tokens`` masks them, so
    its argmax is the token fixed-length greedy decoding picks."""
    import torch

    eos = generation_config.eos_token_id
    ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    masked = logits.clone()
    masked[..., ids] = -torch.inf
    return masked


def greedy_margins(step_logits: Any, chosen_ids: list[int], generation_config: Any) -> Any:
    """Per decoding step, how far below the best logit the chosen token's logit is (EOS
    masked): zeros, within tolerance, when ``chosen_ids`` is the greedy path."""
    import torch

    masked = mask_eos(step_logits, generation_config)
    index = torch.tensor(chosen_ids, device=masked.device)[:, None]
    return masked.max(-1).values - masked.gather(-1, index)[:, 0]


def pipeline_ids(pipe: Any, prompt: str, new_tokens: int) -> list[int]:
    """The token ids a text-generation pipeline returns for ``prompt`` (the prompt's or the
    decoder start's, then ``new_tokens`` greedy ones)."""
    output = pipe(prompt, return_tensors=True, **fixed_length_greedy(new_tokens))
    return [int(i) for i in output[0]["generated_token_ids"]]
