"""The Llama family: decoder-only causal LMs (LlamaForCausalLM) through text-generation.

Run as a script (``python families/test_hf_llama.py --model meta-llama/Llama-2-7b-hf``) or
through pytest (``nox -s llama``); any causal-LM model id of this class runs with no new code.
The tiny checkpoint uses grouped-query attention (4 query heads share 2 key/value heads), a
sentencepiece-style BPE with byte fallback, and exact greedy token ids as golden values. A hub
or local model meets the class oracle (plain English is likely to it; a large one knows the
capital of France) and, for Llama-2-7b-hf, the greedy text transformers' integration tests
publish.
"""

from __future__ import annotations

if __name__ == "__main__":  # where torch is missing, the arguments run in the family's environment
    from _script import run_in_family_environment

    run_in_family_environment(__file__)

import functools
from pathlib import Path
from typing import ClassVar

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GemmaConfig,
    GemmaForCausalLM,
    GemmaTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaTokenizer,
    MistralConfig,
    MistralForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Tokenizer,
    Qwen3Config,
    Qwen3ForCausalLM,
    pipeline,
)

from hfmatrix.checkpoints import (
    byte_symbols,
    grown_bpe,
    seed_parameters,
    tiny_recipe,
    vocab_sha256,
    weights_sha256,
)
from hfmatrix.checks import Check, close, equal
from hfmatrix.cli import family_main
from hfmatrix.generation import (
    fixed_length_greedy,
    greedy_margins,
    greedy_new_ids,
    mask_eos,
    pipeline_ids,
    pipeline_new_text,
)
from hfmatrix.harness import FamilyTest
from hfmatrix.likelihood import capital_of_france, english_nll
from hfmatrix.oracle import Published

PROMPT = "once upon a time the king of france lived in a small city on the"
FALLBACK_TEXT = "The Queen's Café 🙂"  # capitals, é and the emoji are not pieces: bytes
NEW_TOKENS = 20  # greedy, EOS suppressed: exactly this many new tokens
ATOL = 1e-4  # transformers' integration tests and optimum-intel's decoder-LM tolerance

# The class oracle (hfmatrix.likelihood): english_nll, the mean nll per token of plain English
# below 0.6 x ln(vocabulary size); capital_of_france, for models of 1B parameters or more.
# Llama-2-7B's WikiText-2 perplexity is 5.47 in fp16 (AWQ, Lin et al. 2023): 1.7 nats,
# 0.16 x ln 32000.

# Published values: transformers' integration tests of meta-llama/Llama-2-7b-hf pin logits in
# fp16 and bf16 on GPUs (an older fp32 version was skipped as unstable), whose own entries
# (CUDA 7 vs CUDA 8) differ by up to 0.125, beyond the tests' atol and rtol of 1e-2, so an fp32
# CPU run cannot be held to them. Their greedy text can:
# the continuations of LLAMA2_PROMPT published for fp16 on CUDA 7 and on CUDA 8
# (test_compile_static_cache, over its versions) and for bf16 on the CPU
# (test_export_static_cache) all begin "1) the speed of light is" and part after it ("constant",
# "the same", "a constant"): that shared beginning of the decoded text is compared exactly.
LLAMA2_PROMPT = "Simply put, the theory of relativity states that "
LLAMA2_PUBLISHED = Published(
    source=(
        "huggingface/transformers tests/models/llama/test_modeling_llama.py, "
        "LlamaIntegrationTest: test_compile_static_cache and test_export_static_cache "
        "(greedy text; the beginning every version and dtype shares)"
    ),
    values={"prompt": LLAMA2_PROMPT, "text_start": LLAMA2_PROMPT + "1) the speed of light is"},
)
PUBLISHED_NEW_TOKENS = 12  # greedy tokens after the prompt: more than the 7 the start needs

# The tiny checkpoint's tokenizer, laid out like Llama's sentencepiece model: <unk> <s> </s>,
# the 256 byte-fallback pieces, the word-boundary marker and characters, then one piece per
# merge. Each word of WORDS is spelt by merges that grow it from the left ("▁k" + "i" ->
# "▁ki", ...), so every word below is one token and any other text still encodes.
WORDS = [
    "the", "of", "and", "to", "in", "is", "a", "was", "for", "on", "that", "with", "as", "by",
    "it", "at", "from", "his", "an", "were", "are", "which", "this", "be", "or", "has", "had",
    "not", "first", "one", "their", "its", "new", "after", "but", "who", "they", "have", "her",
    "she", "two", "been", "other", "when", "there", "all", "into", "time", "may", "years",
    "more", "most", "only", "over", "city", "some", "world", "would", "where", "later", "up",
    "such", "used", "many", "can", "state", "about", "out", "known", "made", "then", "paris",
    "france", "capital", "river", "country", "once", "upon", "story", "little", "small",
    "large", "king", "queen", "lived", "long", "ago", "castle", "forest", "happy", "day",
]  # fmt: skip
CHARACTERS = "abcdefghijklmnopqrstuvwxyz.,!?'"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]
BYTE_TOKENS = [f"<0x{byte:02X}>" for byte in range(256)]


def vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The BPE vocabulary (piece -> id) and merges of the tiny tokenizer."""
    return grown_bpe([*SPECIAL_TOKENS, *BYTE_TOKENS, "▁", *CHARACTERS], WORDS, prefix="▁")


VOCAB, MERGES = vocabulary()
SIZES = dict(  # transformers' model testers' sizes; grouped-query attention: 4 query heads
    # share 2 key/value heads (head_dim 32 / 4 = 8)
    hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=128,
)  # fmt: skip
TINY_CONFIG = dict(  # LlamaModelTester's sizes, with the vocabulary above
    vocab_size=len(VOCAB), **SIZES, bos_token_id=VOCAB["<s>"], eos_token_id=VOCAB["</s>"],
    tie_word_embeddings=False,
)  # fmt: skip
SEED, INIT_STD = 1234, 0.5
BYTE_LOGIT_SCALE = 0.7  # a trained Llama seldom emits byte pieces: damp their output rows

# Qwen's byte-level BPE (GPT-2's byte symbols, words after "Ġ") and Gemma's sentencepiece
# BPE with byte fallback (<pad> <eos> <bos> <unk> first), over the same words.
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_VOCAB, QWEN_MERGES = grown_bpe(byte_symbols(), WORDS, prefix="Ġ")
QWEN_VOCAB.update({token: len(QWEN_VOCAB) + i for i, token in enumerate(QWEN_SPECIAL)})
GEMMA_VOCAB, GEMMA_MERGES = grown_bpe(
    ["<pad>", "<eos>", "<bos>", "<unk>", *BYTE_TOKENS, "▁", *CHARACTERS], WORDS, prefix="▁"
)


def llama_model(path: Path) -> None:
    """tiny-llama: LlamaConfig with the Llama tokenizer; byte pieces' output rows damped."""
    model = LlamaForCausalLM(LlamaConfig(**TINY_CONFIG))
    seed_parameters(model, SEED, INIT_STD)
    with torch.no_grad():
        model.lm_head.weight[[VOCAB[token] for token in BYTE_TOKENS]] *= BYTE_LOGIT_SCALE
    model.save_pretrained(path)
    llama_tokenizer().save_pretrained(path)


def llama_tokenizer():
    return LlamaTokenizer(vocab=VOCAB, merges=MERGES, add_bos_token=True)


# a tiny checkpoint: the class from its config, seeded weights, its tokenizer
recipe = functools.partial(tiny_recipe, seed=SEED, std=INIT_STD)


LLAMA_IDS = dict(vocab_size=len(VOCAB), bos_token_id=VOCAB["<s>"], eos_token_id=VOCAB["</s>"],
                 tie_word_embeddings=False)  # fmt: skip
QWEN_IDS = dict(vocab_size=len(QWEN_VOCAB), bos_token_id=QWEN_VOCAB["<|endoftext|>"],
                eos_token_id=QWEN_VOCAB["<|endoftext|>"], tie_word_embeddings=False)  # fmt: skip
TINY = {  # tiny model id -> recipe: one per class the family tests
    "tiny-llama": llama_model,
    "tiny-mistral": recipe(MistralForCausalLM, MistralConfig(**SIZES, **LLAMA_IDS),
                           llama_tokenizer),
    "tiny-phi3": recipe(Phi3ForCausalLM, Phi3Config(**SIZES, **LLAMA_IDS, pad_token_id=0),
                        llama_tokenizer),
    "tiny-qwen2": recipe(Qwen2ForCausalLM, Qwen2Config(**SIZES, **QWEN_IDS),
                         lambda: Qwen2Tokenizer(vocab=QWEN_VOCAB, merges=QWEN_MERGES)),
    "tiny-qwen3": recipe(Qwen3ForCausalLM, Qwen3Config(**SIZES, **QWEN_IDS, head_dim=8),
                         lambda: Qwen2Tokenizer(vocab=QWEN_VOCAB, merges=QWEN_MERGES)),
    "tiny-gemma": recipe(
        GemmaForCausalLM,
        GemmaConfig(**SIZES, head_dim=8, vocab_size=len(GEMMA_VOCAB), pad_token_id=0,
                    eos_token_id=1, bos_token_id=2),
        lambda: GemmaTokenizer(vocab=GEMMA_VOCAB, merges=GEMMA_MERGES, add_bos_token=True)),
}  # fmt: skip

# Golden values of each tiny checkpoint (families/golden/llama.json): its weights and
# vocabulary as loaded, and its outputs on PROMPT (fp32, CPU). tiny-llama's greedy
# continuation: the smallest top-1/top-2 logit gap on the way is 0.14, three orders of
# magnitude above ATOL; its 17th token is the byte piece <0xE8>, alone an invalid UTF-8
# sequence, decoded as U+FFFD.


class TestLlamaModels(FamilyTest):
    """Causal LMs: logits, exact greedy ids, pipeline/generate agreement, KV-cache consistency."""

    family = "llama"
    timeout_s = 3600.0  # 7B+ checkpoints: loading alone takes minutes on a CPU
    auto_model = AutoModelForCausalLM
    auto_processor = AutoTokenizer
    openvino_class = "OVModelForCausalLM"
    new_tokens = NEW_TOKENS
    published: ClassVar[dict[str, Published]] = {"meta-llama/Llama-2-7b-hf": LLAMA2_PUBLISHED}
    tiny_recipes = TINY

    def inputs(self, tokenizer):
        return tokenizer(PROMPT, return_tensors="pt").to(self.device)

    def model_inputs(self, model, tokenizer) -> dict:
        return dict(self.inputs(tokenizer))

    generate_inputs = model_inputs

    def pipeline_output(self, pipe) -> list[int]:
        return pipeline_ids(pipe, PROMPT, NEW_TOKENS)

    def pipeline_checks(self, pipe) -> list[Check]:
        prompt_ids = pipe.tokenizer(PROMPT)["input_ids"]
        sequence = self.pipeline_output(pipe)
        [text] = pipe(PROMPT, return_full_text=False, **fixed_length_greedy(NEW_TOKENS))
        text = text["generated_text"]
        new_ids = sequence[len(prompt_ids) :]
        decoded = pipeline_new_text(pipe.tokenizer, prompt_ids, new_ids)
        checks = [
            equal("pipeline_keeps_prompt_ids", sequence[: len(prompt_ids)], prompt_ids),
            equal("new_token_count", len(new_ids), NEW_TOKENS),
            equal("text_is_decoding_of_ids", text, decoded),
        ]
        if self.tier == "tiny":
            golden_ids = self.golden_value("greedy_new_ids", new_ids)
            golden_decoded = pipeline_new_text(pipe.tokenizer, prompt_ids, golden_ids)
            checks.append(self.golden_check("generated_ids", new_ids))
            checks.append(self.golden_check("generated_text", text, stored=golden_decoded))
            checks.append(equal("generated_text_is_golden_decoding", text, golden_decoded))
        return checks

    def from_pretrained_checks(self, model, tokenizer, logits) -> list[Check]:
        inputs = self.inputs(tokenizer)
        prompt_length = inputs["input_ids"].shape[1]
        new_ids = greedy_new_ids(model, inputs, NEW_TOKENS)[0]
        piped = pipeline("text-generation", model=model, tokenizer=tokenizer, device=self.device)
        [output] = piped(PROMPT, return_full_text=False, **fixed_length_greedy(NEW_TOKENS))
        # One forward pass over prompt + continuation, no KV cache: it must see the same
        # prompt logits (causal mask) and pick every generated token (cache, RoPE offsets).
        sequence = torch.cat([inputs["input_ids"][0].cpu(), torch.tensor(new_ids)])
        full = model(input_ids=sequence[None].to(self.device)).logits[0].float().cpu()
        steps = full[prompt_length - 1 : -1]
        first_choice = int(mask_eos(logits[0, -1], model.generation_config).argmax())
        checks = [
            equal("new_token_count", len(new_ids), NEW_TOKENS),
            equal("first_token_is_argmax", new_ids[0], first_choice),
            equal("pipeline_matches_greedy_ids", output["generated_text"],
                  pipeline_new_text(tokenizer, inputs["input_ids"][0].tolist(), new_ids)),
            close("causal_prefix_logits", full[:prompt_length], logits[0], ATOL),
            close("cached_greedy_is_argmax",
                  greedy_margins(steps, new_ids, model.generation_config),
                  torch.zeros(NEW_TOKENS), ATOL),
        ]  # fmt: skip
        if self.tier == "tiny":
            attention = model.model.layers[0].self_attn
            gqa = {  # as loaded: the config, the attention module, the k/v projection weights
                "heads": model.config.num_attention_heads,
                "kv_heads": model.config.num_key_value_heads,
                "groups": attention.num_key_value_groups,
                "kv_rows": [getattr(attention, name).weight.shape[0]  # Phi-3 fuses qkv_proj
                            for name in ("k_proj", "v_proj", "qkv_proj")
                            if hasattr(attention, name)],
            }  # fmt: skip
            fallback_ids = tokenizer(FALLBACK_TEXT)["input_ids"]
            fallback_text = tokenizer.decode(fallback_ids, skip_special_tokens=True)
            stats = torch.stack([logits[0].mean(-1), logits[0].std(-1)], dim=-1)
            checks += [
                self.golden_check("grouped_query_attention", gqa),
                self.golden_check("weights_sha256", weights_sha256(model)),
                self.golden_check("vocab_sha256", vocab_sha256(tokenizer)),
                self.golden_check("input_ids", inputs["input_ids"][0].tolist()),
                self.golden_check("byte_fallback_ids", fallback_ids),  # bytes outside pieces
                equal("byte_fallback_round_trip", fallback_text, FALLBACK_TEXT),
                self.golden_check("logits_slice", logits[0, -3:, :5], ATOL),  # [0, -3:, :5]
                self.golden_check("logits_stats", stats, ATOL),  # per position: mean, std
                self.golden_check("greedy_new_ids", new_ids),  # NEW_TOKENS greedy ids
            ]  # fmt: skip
        return checks

    def oracle_checks(self, model, tokenizer) -> list[Check]:
        return [english_nll(model, tokenizer), capital_of_france(model, tokenizer)]

    def published_checks(self, model, tokenizer, values) -> list[Check]:
        """The greedy text of the published prompt begins as published."""
        published = values.values
        inputs = dict(tokenizer(published["prompt"], return_tensors="pt").to(self.device))
        prompt_ids = inputs["input_ids"][0].tolist()
        new_ids = greedy_new_ids(model, inputs, PUBLISHED_NEW_TOKENS)[0]
        text = tokenizer.decode([*prompt_ids, *new_ids], skip_special_tokens=True)
        start = published["text_start"]
        detail = f"greedy text {text!r} must begin {start!r}"
        return [Check("greedy_text_start", text.startswith(start), detail)]


if __name__ == "__main__":
    raise SystemExit(family_main(TestLlamaModels))
