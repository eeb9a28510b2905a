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

from pathlib import Path
from typing import ClassVar

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Tokenizer,
    pipeline,
)

from hfmatrix.checkpoints import byte_symbols, seed_parameters, vocab_sha256, weights_sha256
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

# Golden values of the tiny checkpoint: its weights and vocabulary as loaded, and its
# outputs on PROMPT (fp32, CPU).
GOLDEN_WEIGHTS_SHA256 = "35be1afb97979886ee9a9577bf044c42a9a12ad1fb694d4a23bdf7618b7c5c5e"
GOLDEN_VOCAB_SHA256 = "bf8278cbf2df536c4b512e16f1dc85ceaf4ee3f2ac99e6b0b7cedc4c5e432927"
GOLDEN_INPUT_IDS = [
    272, 263, 276, 116, 277, 271, 32, 114, 281, 115, 270, 116, 111, 258, 290, 44, 285, 100,
    258, 288,
]  # fmt: skip
GOLDEN_BYTES_IDS = [  # one id per UTF-8 byte, but for the merge "ve" (282)
    67, 97, 102, 195, 169, 32, 110, 97, 195, 175, 282, 32, 226, 128, 148, 32, 230, 157, 177,
    228, 186, 172, 32, 240, 159, 166, 138, 33,
]  # fmt: skip
GOLDEN_LOGITS = [  # logits[0, -3:, :5]
    [0.442774, -0.4466, 2.278809, 2.968004, 7.108683],
    [-0.619316, -4.819028, -0.435146, 2.528574, 8.010276],
    [-1.914149, -4.784981, 2.093583, 3.756762, 5.962634],
]
GOLDEN_LOGITS_STATS = [  # per position: mean and std of the logits over the vocabulary
    [0.024385, 3.033396], [-0.037332, 3.445004], [-0.209107, 4.086006], [-0.044464, 4.353384],
    [-0.196084, 4.193335], [-0.251062, 4.232665], [-0.15659, 4.378649], [0.096154, 3.774003],
    [0.25784, 4.112727], [0.164408, 3.652504], [-0.048929, 3.63256], [0.124504, 3.055523],
    [-0.204656, 3.892658], [-0.096966, 3.899291], [-0.239352, 4.318051], [0.03723, 4.195179],
    [-0.020947, 3.671737], [-0.122291, 3.614352], [-0.118758, 4.288292], [-0.095996, 3.351202],
]  # fmt: skip
# Greedy ids after PROMPT (smallest top-1/top-2 logit gap over the 20 steps: 0.02, 200 x ATOL).
GOLDEN_NEW_IDS = [
    251, 26, 47, 275, 267, 46, 111, 180, 119, 63, 275, 8, 46, 47, 284, 68, 275, 47, 275, 40,
]  # fmt: skip
# The pipeline's generated text: GOLDEN_NEW_IDS decoded (random weights pick raw bytes too;
# a lone byte that is not valid UTF-8 decodes to U+FFFD).
GOLDEN_TEXT = "\ufffd\x1a/icim.o\ufffdw?ic\x08./ timDic/ic("


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

    def build_tiny(self, path: Path) -> None:
        vocab = {token: i for i, token in enumerate(VOCAB)}
        merges = [tuple(merge.split()) for merge in MERGES]
        tokenizer = GPT2Tokenizer(
            vocab=vocab, merges=merges, model_max_length=TINY_CONFIG["n_positions"]
        )
        model = GPT2LMHeadModel(GPT2Config(**TINY_CONFIG))
        seed_parameters(model, SEED, INIT_STD)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)

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
            checks.append(equal("generated_ids", new_ids, GOLDEN_NEW_IDS))
            checks.append(equal("generated_text", text, GOLDEN_TEXT))
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
            checks.append(equal("weights_sha256", weights_sha256(model), GOLDEN_WEIGHTS_SHA256))
            checks.append(equal("vocab_sha256", vocab_sha256(tokenizer), GOLDEN_VOCAB_SHA256))
            checks.append(equal("input_ids", input_ids, GOLDEN_INPUT_IDS))
            checks.append(equal("bytes_input_ids", tokenizer(BYTES_TEXT)["input_ids"],
                                GOLDEN_BYTES_IDS))  # fmt: skip
            checks.append(close("logits_slice", logits[0, -3:, :5], GOLDEN_LOGITS, ATOL))
            stats = torch.stack([logits[0].mean(-1), logits[0].std(-1)], dim=-1)
            checks.append(close("logits_stats", stats, GOLDEN_LOGITS_STATS, ATOL))
            checks.append(equal("greedy_ids", new_ids, GOLDEN_NEW_IDS))
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
