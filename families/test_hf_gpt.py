"""The GPT family: decoder-only language models (GPT2LMHeadModel and kin) through
text-generation.

Run as a script (``python families/test_hf_gpt.py --model gpt2``) or through pytest
(``nox -s gpt``); any causal-LM model id of this class runs with no new code. A hub or local
model meets the class oracle (plain English is likely to it; a large one knows the capital of
France) and, for gpt2, the outputs transformers' integration tests publish.
"""

from __future__ import annotations

if __name__ == "__main__":  # where torch is missing, the arguments run in the family's environment
    from _script import run_in_family_environment

    run_in_family_environment(__file__)

import functools
from collections.abc import Callable
from typing import ClassVar

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    FalconConfig,
    FalconForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTJConfig,
    GPTJForCausalLM,
    GPTNeoConfig,
    GPTNeoForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    pipeline,
)

from hfmatrix.checkpoints import (
    byte_symbols,
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
)
from hfmatrix.harness import FamilyTest
from hfmatrix.likelihood import capital_of_france, english_nll
from hfmatrix.oracle import Published

PROMPT = "The little fox runs into the forest, and the dog"
BYTES_TEXT = "Café naïve — 東京 🦊!"  # outside the merges: byte-level fallback, lossless decoding
NEW_TOKENS = 20  # greedy, EOS suppressed: exactly this many new tokens, compared id by id
ATOL = 1e-4  # transformers' integration tests and optimum-intel's decoder-LM tolerance

# The class oracle (hfmatrix.likelihood): english_nll, the mean nll per token of plain English
# below 0.6 x ln(vocabulary size); capital_of_france, for models of 1B parameters or more.

# Published values: transformers' integration tests of openai-community/gpt2 (fp32, greedy
# generate(do_sample=False, max_length=20)), token ids and text compared exactly, as there.
GPT2_DOG_IDS = [464, 3290]  # "The dog", as the test's comment reads them
GPT2_DOG_GREEDY_IDS = [  # "The dog was found in a field near the intersection of West and ..."
    464, 3290, 373, 1043, 287, 257, 2214, 1474, 262, 16246, 286, 2688, 290, 2688, 27262, 13, 198,
    198, 464, 3290,
]  # fmt: skip
GPT2_PUBLISHED = Published(
    source=(
        "huggingface/transformers tests/models/gpt2/test_modeling_gpt2.py, "
        "GPT2ModelLanguageGenerationTest: test_lm_generate_gpt2 and test_batch_generation"
    ),
    values={
        "max_length": 20,  # of the whole sequence, prompt and new tokens
        "dog_ids": GPT2_DOG_IDS,
        "dog_greedy_ids": GPT2_DOG_GREEDY_IDS,
        "sentence": "Hello, my dog is a little",
        "sentence_greedy_text": (
            "Hello, my dog is a little bit of a mess. I'm not sure if he's going"
        ),
    },
)

# The tiny checkpoint's byte-level BPE: GPT-2's 256 byte symbols, then these merges (the 35
# that tokenizers' BpeTrainer learns, min_frequency=2, from four sentences about a fox and a
# dog), then <|endoftext|> last, as in GPT-2.
MERGES = [
    "h e", "Ġ t", "Ġt he", "Ġ a", "f o", "Ġ fo", "r e", "Ġ l", "Ġ o", "Ġ w", "e n", "i m",
    "i n", "Ġ s", "Ġ in", "Ġfo x", "T he", "c e", "d o", "i c", "i t", "l e", "n e", "p s",
    "s t", "u n", "v e", "Ġ do", "Ġt im", "Ġa n", "Ġfo re", "Ġl a", "Ġdo g", "Ġtim e",
    "Ġfore st",
]  # fmt: skip
EOS = "<|endoftext|>"


VOCAB = [*byte_symbols(), *(merge.replace(" ", "") for merge in MERGES), EOS]
TINY_CONFIG = dict(  # transformers' GPT2ModelTester sizes, with the vocabulary above
    vocab_size=len(VOCAB), n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=37,
    bos_token_id=VOCAB.index(EOS), eos_token_id=VOCAB.index(EOS),
)  # fmt: skip
SEED, INIT_STD = 1234, 0.5

EOS_ID = VOCAB.index(EOS)
IDS = dict(vocab_size=len(VOCAB), bos_token_id=EOS_ID, eos_token_id=EOS_ID)


def bpe(tokenizer_class: str = "GPT2Tokenizer", **options) -> Callable[[], object]:
    """The tiny byte-level BPE tokenizer (VOCAB, MERGES) as transformers' ``tokenizer_class``
    (looked up when the recipe runs: transformers 4 has no GPTNeoXTokenizer)."""
    import transformers

    vocab = {token: i for i, token in enumerate(VOCAB)}
    merges = [tuple(merge.split()) for merge in MERGES]
    return lambda: getattr(transformers, tokenizer_class)(
        vocab=vocab, merges=merges, model_max_length=64, **options
    )


# a tiny checkpoint: the class from its config, seeded weights, its tokenizer
recipe = functools.partial(tiny_recipe, seed=SEED, std=INIT_STD)


TINY = {  # tiny model id -> recipe: one per class the family tests, all byte-level BPE
    "tiny-gpt": recipe(GPT2LMHeadModel, GPT2Config(**TINY_CONFIG), bpe()),
    "tiny-gpt-neo": recipe(GPTNeoForCausalLM, GPTNeoConfig(
        **IDS, max_position_embeddings=64, hidden_size=32, num_layers=2, num_heads=4,
        intermediate_size=37, attention_types=[[["global", "local"], 1]], window_size=8),
        bpe()),
    "tiny-gpt-neox": recipe(GPTNeoXForCausalLM, GPTNeoXConfig(
        **IDS, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=64, rotary_pct=0.25,
        tie_word_embeddings=False), bpe("GPTNeoXTokenizer", pad_token=EOS)),
    "tiny-opt": recipe(OPTForCausalLM, OPTConfig(
        **IDS, pad_token_id=EOS_ID, hidden_size=32, num_hidden_layers=2, ffn_dim=37,
        num_attention_heads=4, max_position_embeddings=64, word_embed_proj_dim=32), bpe()),
    "tiny-gptj": recipe(GPTJForCausalLM, GPTJConfig(  # rotary on 4 of each head's 8 dimensions
        **IDS, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=37, rotary_dim=4),
        bpe()),
    # Falcon-7B's layout: one key/value head (multi-query), attention parallel to the MLP,
    # rotary; its byte-level BPE ships as a plain tokenizers file, here GPT-2's class
    "tiny-falcon": recipe(FalconForCausalLM, FalconConfig(
        **IDS, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, multi_query=True,
        parallel_attn=True, max_position_embeddings=64), bpe()),
}  # fmt: skip

# Golden values of each tiny checkpoint (families/golden/gpt.json): its weights and
# vocabulary as loaded, and its outputs on PROMPT (fp32, CPU). tiny-gpt's greedy ids: the
# smallest top-1/top-2 logit gap over the 20 steps is 0.02, 200 x ATOL (tiny-gptj's 0.14,
# tiny-falcon's 0.02); random weights pick raw bytes too, and a lone byte that is not valid
# UTF-8 decodes to U+FFFD.


class TestGptModels(FamilyTest):
    """Causal LMs: text-generation pipeline, direct logits and greedy ids, their agreement."""

    family = "gpt"
    auto_model = AutoModelForCausalLM
    auto_processor = AutoTokenizer
    openvino_class = "OVModelForCausalLM"
    new_tokens = NEW_TOKENS
    published: ClassVar[dict[str, Published]] = {
        "gpt2": GPT2_PUBLISHED,
        "openai-community/gpt2": GPT2_PUBLISHED,
    }
    tiny_recipes = TINY

    def model_inputs(self, model, tokenizer) -> dict:
        return dict(tokenizer(PROMPT, return_tensors="pt").to(self.device))

    generate_inputs = model_inputs

    def pipeline_output(self, pipe) -> list[int]:
        return pipeline_ids(pipe, PROMPT, NEW_TOKENS)

    def pipeline_checks(self, pipe) -> list[Check]:
        generate = fixed_length_greedy(NEW_TOKENS)
        text = pipe(PROMPT, return_full_text=False, **generate)[0]["generated_text"]
        ids = self.pipeline_output(pipe)  # prompt ids, then the new ones
        prompt_ids = pipe.tokenizer(PROMPT)["input_ids"]
        new_ids = ids[len(prompt_ids) :]
        direct = self.greedy(pipe.model, pipe.tokenizer)
        checks = [
            equal("prompt_kept", ids[: len(prompt_ids)], prompt_ids),
            equal("pipeline_ids_match_direct_greedy", new_ids, direct),
            equal("text_is_greedy_ids_decoded", text,
                  pipe.tokenizer.decode(direct, skip_special_tokens=True)),
        ]  # fmt: skip
        if self.tier == "tiny":
            checks.append(self.golden_check("generated_ids", new_ids))
            checks.append(self.golden_check("generated_text", text))
        return checks

    def from_pretrained_checks(self, model, tokenizer, logits) -> list[Check]:
        def decode(ids: list[int]) -> str:
            return tokenizer.decode(ids, skip_special_tokens=True)

        input_ids = tokenizer(PROMPT)["input_ids"]
        new_ids = self.greedy(model, tokenizer)
        # One forward pass over prompt + generated ids (no cache) must pick the same tokens
        # that cached decoding picked: the chosen token's logit is the maximum, within ATOL.
        full = torch.tensor([input_ids + new_ids], device=self.device)
        steps = model(full).logits[0, len(input_ids) - 1 : -1]
        first_choice = int(mask_eos(logits[0, -1], model.generation_config).argmax())
        piped = pipeline("text-generation", model=model, tokenizer=tokenizer, device=self.device)
        text = piped(PROMPT, return_full_text=False, **fixed_length_greedy(NEW_TOKENS))
        checks = [
            equal("logits_shape", list(logits.shape),
                  [1, len(input_ids), model.config.vocab_size]),
            equal("new_token_count", len(new_ids), NEW_TOKENS),
            equal("first_greedy_token_is_argmax", new_ids[0], first_choice),
            close("greedy_ids_are_argmax_without_cache",
                  greedy_margins(steps, new_ids, model.generation_config),
                  torch.zeros(NEW_TOKENS), ATOL),
            equal("pipeline_matches_greedy_text", text[0]["generated_text"], decode(new_ids)),
            equal("decode_round_trip", decode(input_ids), PROMPT),
            equal("bytes_decode_round_trip", decode(tokenizer(BYTES_TEXT)["input_ids"]),
                  BYTES_TEXT),
        ]  # fmt: skip
        if self.tier == "tiny":
            stats = torch.stack([logits[0].mean(-1), logits[0].std(-1)], dim=-1)
            checks += [
                self.golden_check("weights_sha256", weights_sha256(model)),
                self.golden_check("vocab_sha256", vocab_sha256(tokenizer)),
                self.golden_check("input_ids", input_ids),
                self.golden_check("bytes_input_ids", tokenizer(BYTES_TEXT)["input_ids"]),
                self.golden_check("logits_slice", logits[0, -3:, :5], ATOL),  # [0, -3:, :5]
                self.golden_check("logits_stats", stats, ATOL),  # per position: mean, std
                self.golden_check("greedy_ids", new_ids),
            ]
        return checks

    def oracle_checks(self, model, tokenizer) -> list[Check]:
        return [english_nll(model, tokenizer), capital_of_france(model, tokenizer)]

    def published_checks(self, model, tokenizer, values) -> list[Check]:
        """The token ids and text of GPT2_PUBLISHED: tokenizer, greedy ids, greedy text."""
        published = values.values
        dog, expected = published["dog_ids"], published["dog_greedy_ids"]
        checks = [equal("dog_input_ids", tokenizer("The dog")["input_ids"], dog)]
        if max(dog) >= model.config.vocab_size:
            detail = f"input ids {dog} lie outside the model's {model.config.vocab_size} tokens"
            checks.append(Check("dog_greedy_ids", False, detail))
        else:
            inputs = {"input_ids": torch.tensor([dog], device=self.device)}
            new_ids = greedy_new_ids(model, inputs, published["max_length"] - len(dog))[0]
            checks.append(equal("dog_greedy_ids", [*dog, *new_ids], expected))
        inputs = dict(tokenizer(published["sentence"], return_tensors="pt").to(self.device))
        prompt_ids = inputs["input_ids"][0].tolist()
        room = max(published["max_length"] - len(prompt_ids), 1)
        new_ids = greedy_new_ids(model, inputs, room)[0]
        text = tokenizer.decode([*prompt_ids, *new_ids], skip_special_tokens=True)
        checks.append(equal("sentence_greedy_text", text, published["sentence_greedy_text"]))
        return checks


if __name__ == "__main__":
    raise SystemExit(family_main(TestGptModels))
