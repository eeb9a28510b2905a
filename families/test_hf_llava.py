"""The LLaVA family: vision-language models (LlavaForConditionalGeneration) through
image-text-to-text.

A CLIP vision tower encodes the image, a projector maps its patch features into the
language model's embedding space, and the processor expands the prompt's one ``<image>``
token into one placeholder per image feature, which the model replaces with those features
before a Llama decoder generates. Run as a script
(``python families/test_hf_llava.py --model llava-hf/llava-1.5-7b-hf``) or through pytest
(``nox -s llava``); any model id of this class runs with no new code. The class oracle shows
a real photograph (hfmatrix/data/chelsea.jpg, a tabby cat): the model must name the animal,
and find a short true description of it likely.
"""

from __future__ import annotations

if __name__ == "__main__":  # where torch is missing, the arguments run in the family's environment
    from _script import run_in_family_environment

    run_in_family_environment(__file__)

import re
from pathlib import Path

import torch
from PIL import ImageOps
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaTokenizer,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from hfmatrix import compat
from hfmatrix.checkpoints import grown_bpe, seed_parameters, vocab_sha256, weights_sha256
from hfmatrix.checks import Check, equal, truth
from hfmatrix.cli import family_main
from hfmatrix.generation import fixed_length_greedy, greedy_new_ids, mask_eos
from hfmatrix.harness import FamilyTest
from hfmatrix.inputs import photo, synthetic_image
from hfmatrix.likelihood import vocab_bound
from hfmatrix.oracle import bounded

PROMPT_FORMAT = "USER: <image>\n{question} ASSISTANT:"  # llava-1.5's prompt format
PROMPT = PROMPT_FORMAT.format(question="What is in this picture?")
NEW_TOKENS = 12
# optimum-intel's LLaVA tolerance is 4e-3, for OpenVINO against PyTorch; here the reference
# and the run are both PyTorch fp32, where the tiny checkpoint's logits move by ~5e-6 at
# most (measured: 1 vs 2 CPU threads, a different summation order).
ATOL = 1e-4
IMAGE_DIFF_MIN = 1e-3  # the last position's logits must move this much when the image does

# The class oracle, on inputs.photo("chelsea") (a close-up of a tabby cat), asked in the
# checkpoint's chat template where its processor has one, else in PROMPT_FORMAT:
# - names_the_cat: the greedy answer to QUESTION names a cat (a word of CAT_WORDS); the
#   answer is in the record.
# - description_nll: the mean negative log-likelihood per token of DESCRIPTION, a true
#   one-sentence answer to DESCRIBE, given the photo, below likelihood.vocab_bound (0.6 x
#   ln(vocabulary size); uniform guessing scores ln V). A trained model predicts a true
#   caption of the image it sees better than plain running text, which that bound already
#   leaves trained language models far below; an untrained one scores ~ln V or worse.
ORACLE_IMAGE = "chelsea"
QUESTION = "What animal is in this picture? Answer in one word."
CAT_WORDS = ("cat", "cats", "kitten", "kittens", "kitty", "tabby", "feline")
ORACLE_NEW_TOKENS = 20  # a one-word answer, or a short sentence; EOS ends it earlier
DESCRIBE = "Describe this picture in one sentence."
DESCRIPTION = "A close-up of a tabby cat with green eyes."

# The tiny checkpoint's byte-pair vocabulary: special tokens, characters, then every word
# of WORDS built up one character at a time (each step is one merge). "▁" marks a word
# start, as in Llama's tokenizer.
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
CHARACTERS = [*"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,:?!'\n▁"]
WORDS = [
    "▁USER", "▁ASSISTANT", "What", "▁what", "▁is", "▁in", "▁this", "▁picture", "▁image",
    "▁a", "▁an", "▁the", "▁of", "▁and", "▁with", "▁on", "▁square", "▁red", "▁green",
    "▁blue", "▁dark", "▁light", "▁gradient", "▁corner", "▁there", "▁it", "▁shows",
]  # fmt: skip
IMAGE_SIZE, PATCH_SIZE = 32, 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # CLIP's CLS feature is dropped ("default")
VISION_CONFIG = dict(  # transformers' LlavaModelTester / CLIP tester sizes
    image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, hidden_size=32, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=37, projection_dim=32,
)  # fmt: skip
TEXT_CONFIG = dict(  # a Llama decoder with grouped-query attention (4 heads, 2 KV heads)
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    intermediate_size=37, max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
    pad_token_id=3,
)  # fmt: skip
LLAVA_CONFIG = dict(
    image_token_index=SPECIAL_TOKENS.index("<image>"), image_seq_length=IMAGE_TOKENS,
    vision_feature_layer=-1, vision_feature_select_strategy="default",
    projector_hidden_act="gelu",
)  # fmt: skip
IMAGE_PROCESSOR = dict(  # CLIP's processing (and mean/std), resized to the tiny tower
    size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
)  # fmt: skip
# With std 0.5 the projected image features reach ~260 and the logits move by 3e-5 with the
# thread count; at 0.25 they stay near 12. Seed 38: every greedy step leads by >= 0.16.
SEED, INIT_STD = 38, 0.25


def names_a_cat(text: str) -> bool:
    """Whether ``text`` has a word of CAT_WORDS (any case)."""
    return any(word in CAT_WORDS for word in re.findall(r"[a-z]+", text.lower()))


def shared_prefix(first: list[int], second: list[int]) -> int:
    """How many leading ids two sequences share (a prompt's, with and without an answer)."""
    pairs = zip(first, second, strict=False)
    return next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(first), len(second)))


def bpe_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The tiny BPE's vocabulary and merges, derived from the constants above."""
    return grown_bpe([*SPECIAL_TOKENS, *CHARACTERS], WORDS)


def tiny_llava(path: Path) -> None:
    """The tiny checkpoint's recipe: the BPE as a Llama tokenizer with an <image> token, CLIP's
    image processing, and a seeded model of a CLIP tower, projector and Llama decoder, saved
    into ``path``."""
    vocab, merges = bpe_vocabulary()
    tokenizer = LlamaTokenizer(
        vocab=vocab, merges=merges, pad_token="<pad>", add_bos_token=True,
        extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(**IMAGE_PROCESSOR), tokenizer=tokenizer,
        patch_size=PATCH_SIZE, vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS position
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**VISION_CONFIG),
        text_config=LlamaConfig(vocab_size=len(vocab), **TEXT_CONFIG),
        **LLAVA_CONFIG,
    )
    model = LlavaForConditionalGeneration(config)
    seed_parameters(model, SEED, INIT_STD)
    model.save_pretrained(path)
    processor.save_pretrained(path)


TINY = {"tiny-llava": tiny_llava}  # tiny model id -> recipe

# Golden values of the tiny checkpoint (families/golden/llava.json): its weights and
# vocabulary as loaded, its inputs after processing and its outputs on PROMPT and
# synthetic_image() (fp32, CPU). The pipeline's text is the greedy new ids decoded after the
# prompt (so its first word keeps its space).


class TestLlavaModels(FamilyTest):
    """LLaVA models: image-token expansion, logits, greedy generation, pipeline agreement."""

    family = "llava"
    timeout_s = 3600.0  # 7B+ checkpoints: loading alone takes minutes on a CPU
    auto_model = AutoModelForImageTextToText
    auto_processor = AutoProcessor
    openvino_class = "OVModelForVisualCausalLM"
    new_tokens = NEW_TOKENS
    openvino_atol = 4e-3  # optimum-intel's LLaVA tolerance (ANCHORS.md)
    tiny_recipes = TINY

    def inputs(self, processor, image=None) -> dict:
        image = synthetic_image() if image is None else image
        return processor(images=image, text=PROMPT, return_tensors="pt").to(self.device)

    def model_inputs(self, model, processor) -> dict:
        return dict(self.inputs(processor))

    generate_inputs = model_inputs

    def image_token_checks(self, model, processor, inputs) -> list[Check]:
        """The processor expands <image> into as many placeholders as the vision tower (after
        the feature selection) gives features, and as its config implies."""
        config, vision = model.config, model.config.vision_config
        tokens = inputs["input_ids"][0].tolist().count(config.image_token_id)
        from_config = (vision.image_size // vision.patch_size) ** 2
        if config.vision_feature_select_strategy != "default":  # CLS (or the like) kept
            from_config += processor.num_additional_image_tokens
        features = compat.image_features(model.get_image_features(
            pixel_values=inputs["pixel_values"],
            vision_feature_layer=config.vision_feature_layer,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
        ))  # fmt: skip
        return [
            equal("image_tokens_match_features", tokens, sum(len(f) for f in features)),
            equal("image_tokens_match_vision_config", tokens, from_config),
        ]

    def pipeline_parts(self, processor) -> dict:
        return {"processor": processor}

    def oracle_prompt(self, processor, question: str) -> str:
        """``question`` about one image, as the checkpoint's chat template writes a user turn
        and the assistant's cue (PROMPT_FORMAT where the processor has no template)."""
        if not getattr(processor, "chat_template", None):
            return PROMPT_FORMAT.format(question=question)
        turn = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
        ]
        return processor.apply_chat_template(turn, add_generation_prompt=True)

    def answer(self, model, processor, question: str) -> str:
        """The greedy answer to ``question`` about the oracle's photograph."""
        prompt = self.oracle_prompt(processor, question)
        inputs = processor(images=photo(ORACLE_IMAGE), text=prompt, return_tensors="pt")
        greedy = fixed_length_greedy(ORACLE_NEW_TOKENS)
        del greedy["min_new_tokens"]  # a trained model ends its answer with EOS
        ids = model.generate(**inputs.to(self.device), **greedy)[0, inputs["input_ids"].shape[1] :]
        return processor.decode(ids, skip_special_tokens=True).strip()

    def answer_nll(self, model, processor, question: str, answer: str) -> float:
        """Mean negative log-likelihood (nats) per token of ``answer`` after ``question``
        about the oracle's photograph: the tokens past the prompt's own."""
        prompt = self.oracle_prompt(processor, question)
        image = photo(ORACLE_IMAGE)
        context = processor(images=image, text=prompt)["input_ids"][0]
        space = "" if prompt[-1:].isspace() else " "
        inputs = processor(images=image, text=prompt + space + answer, return_tensors="pt")
        ids = inputs["input_ids"][0].tolist()
        start = max(shared_prefix(context, ids), 1)  # the first answer token, at least
        logits = model(**inputs.to(self.device)).logits[0, start - 1 : -1].float()
        target = torch.tensor(ids[start:], device=logits.device)
        return float(torch.nn.functional.cross_entropy(logits, target))

    def oracle_checks(self, model, processor) -> list[Check]:
        """The photographed cat named, and a true description of it likely."""
        text = self.answer(model, processor, QUESTION)
        named = names_a_cat(text)
        said = f"answer {text!r} to {QUESTION!r} {'names' if named else 'does not name'} a cat"
        nll = self.answer_nll(model, processor, DESCRIBE, DESCRIPTION)
        vocab_size = model.config.get_text_config().vocab_size
        return [
            Check("names_the_cat", named, f"{said} ({', '.join(CAT_WORDS)})"),
            bounded("description_nll", nll, vocab_bound(vocab_size),
                    f"nll/token of {DESCRIPTION!r} given the photo"),
        ]  # fmt: skip

    def pipeline_output(self, pipe) -> str:
        output = pipe(images=synthetic_image(), text=PROMPT, return_full_text=False,
                      generate_kwargs=fixed_length_greedy(NEW_TOKENS))  # fmt: skip
        return output[0]["generated_text"]

    def pipeline_checks(self, pipe) -> list[Check]:
        inputs = self.inputs(pipe.processor)
        with torch.inference_mode():
            checks = self.image_token_checks(pipe.model, pipe.processor, inputs)
        if not all(check.passed for check in checks):
            return checks  # the model refuses to generate from a mismatched expansion
        output = pipe(
            images=synthetic_image(), text=PROMPT, return_full_text=False,
            generate_kwargs=fixed_length_greedy(NEW_TOKENS),
        )  # fmt: skip
        text = output[0]["generated_text"]
        new_ids = greedy_new_ids(pipe.model, inputs, NEW_TOKENS)[0]
        decoded = pipe.processor.decode(new_ids, skip_special_tokens=True)
        # The pipeline decodes the new tokens after the prompt's, where the first new word
        # may keep the leading space that decoding them alone strips.
        checks.append(equal("pipeline_text_is_decoded_greedy_ids", text.lstrip(), decoded.lstrip()))
        if self.tier == "tiny":
            checks.append(self.golden_check("generated_text", text))
        return checks

    def from_pretrained_checks(self, model, processor, logits) -> list[Check]:
        inputs = self.inputs(processor)
        new_ids = greedy_new_ids(model, inputs, NEW_TOKENS)[0]
        mirrored = self.inputs(processor, ImageOps.mirror(synthetic_image()))
        image_diff = float((model(**mirrored).logits[0, -1] - logits[0, -1]).abs().max())
        last = mask_eos(logits[0, -1], model.generation_config)
        checks = [
            equal("first_greedy_id_is_logits_argmax", new_ids[0], int(last.argmax())),
            truth("image_reaches_logits", image_diff > IMAGE_DIFF_MIN,
                  f"max |diff| {image_diff:.3g} between the image and its mirror image"),
        ]  # fmt: skip
        if self.tier == "tiny":
            pixels = inputs["pixel_values"][0].flatten(1)
            pixel_stats = torch.stack([pixels.mean(-1), pixels.std(-1)], dim=-1)
            checks += [
                self.golden_check("weights_sha256", weights_sha256(model)),
                self.golden_check("vocab_sha256", vocab_sha256(processor.tokenizer)),
                self.golden_check("input_ids", inputs["input_ids"][0].tolist()),
                self.golden_check("pixel_values_stats", pixel_stats, ATOL),  # per channel
                self.golden_check("logits_slice", logits[0, -3:, :6], ATOL),  # [0, -3:, :6]
                self.golden_check("greedy_new_ids", new_ids),
            ]
        return checks


if __name__ == "__main__":
    raise SystemExit(family_main(TestLlavaModels))
