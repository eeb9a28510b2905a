"""The BERT family: masked language models (BertForMaskedLM and kin) through fill-mask.

Run as a script (``python families/test_hf_bert.py --model bert-base-uncased``) or through
pytest (``nox -s bert``); any masked-LM model id of this class runs with no new code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertTokenizer,
    pipeline,
)

from hfmatrix.checkpoints import seed_parameters, vocab_sha256, weights_sha256
from hfmatrix.checks import Check, close, equal, truth
from hfmatrix.cli import family_main
from hfmatrix.harness import FamilyTest

PROMPT = "paris is the {mask} of france."
CASED_TEXT = "Paris is the CAPITAL of Frânce!"  # the uncased tokenizer lowercases, strips accents
TOP_K = 5
ATOL = 1e-4  # transformers' integration tests and optimum-intel's masked-LM tolerance
HUB_EXPECTED_TOKEN = "capital"  # a trained masked LM must rank it in its top 5

# The tiny checkpoint's WordPiece vocabulary (special tokens, characters, words, suffixes).
WORDS = [
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "it",
    "at", "from", "his", "an", "were", "are", "which", "this", "be", "or", "has", "had", "not",
    "first", "one", "their", "its", "new", "after", "but", "who", "they", "have", "her", "she",
    "two", "been", "other", "when", "there", "all", "during", "into", "school", "time", "may",
    "years", "more", "most", "only", "over", "city", "some", "world", "would", "where", "later",
    "up", "such", "used", "many", "can", "state", "about", "national", "out", "known",
    "university", "united", "then", "made", "paris", "france", "capital", "river", "country",
]  # fmt: skip
VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *".,!?'",
    *"abcdefghijklmnopqrstuvwxyz", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"),
    *WORDS, "##s", "##ed", "##ing", "##ly",
]  # fmt: skip
TINY_CONFIG = dict(  # transformers' BertModelTester sizes, with the vocabulary above
    vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=64, type_vocab_size=2,
)  # fmt: skip
SEED, INIT_STD = 1234, 0.5

# Golden values of the tiny checkpoint: its weights and vocabulary as loaded, and its
# outputs on PROMPT (fp32, CPU).
GOLDEN_WEIGHTS_SHA256 = "1dcb03da1e1257e6c7b29b6468753c0ab1688b3647fb8595d73fb72910179537"
GOLDEN_VOCAB_SHA256 = "b54f7e7611fc482db4d63cf6f293c7e4ff3cf41e44d46e2ac52cd7408975497f"
GOLDEN_INPUT_IDS = [2, 137, 67, 62, 4, 63, 138, 5, 3]
GOLDEN_CASED_IDS = [2, 137, 67, 62, 139, 63, 138, 7, 3]
GOLDEN_LOGITS = [  # logits[0, :3, :5]
    [1.657873, 2.209316, -4.001397, 0.116846, 0.058523],
    [1.933452, 2.66137, -4.698655, -0.237187, -0.071769],
    [2.204022, 3.25332, -5.288403, -0.192979, -0.88368],
]
GOLDEN_LOGITS_STATS = [  # per position: mean and std of the logits over the vocabulary
    [0.275669, 3.842459], [0.215258, 3.766723], [0.131036, 3.67106],
    [0.41283, 3.366697], [0.417579, 3.465505], [0.224718, 3.891962],
    [0.268184, 3.827034], [0.144969, 3.65077], [0.307738, 3.639375],
]  # fmt: skip
GOLDEN_TOP_TOKENS = ["##r", "##o", "after", "t", "##ly"]
GOLDEN_TOP_SCORES = [0.257127, 0.241528, 0.120213, 0.074307, 0.039298]


class TestBertModels(FamilyTest):
    """Masked-LM models: fill-mask pipeline, direct logits, pipeline/logits agreement."""

    family = "bert"
    auto_model = AutoModelForMaskedLM
    auto_processor = AutoTokenizer
    openvino_class = "OVModelForMaskedLM"

    def build_tiny(self, path: Path) -> None:
        tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(VOCAB)})
        model = BertForMaskedLM(BertConfig(**TINY_CONFIG))
        seed_parameters(model, SEED, INIT_STD)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)

    def prompt(self, tokenizer) -> str:
        return PROMPT.format(mask=tokenizer.mask_token)

    def model_inputs(self, model, tokenizer) -> dict:
        return dict(tokenizer(self.prompt(tokenizer), return_tensors="pt").to(self.device))

    def pipeline_output(self, pipe) -> list[dict]:
        return pipe(self.prompt(pipe.tokenizer), top_k=TOP_K)

    def pipeline_checks(self, pipe) -> list[Check]:
        predictions = pipe(self.prompt(pipe.tokenizer), top_k=TOP_K)
        tokens = [p["token_str"].strip() for p in predictions]
        scores = [p["score"] for p in predictions]
        checks = [
            truth("scores_are_probabilities", all(0 < s <= 1 for s in scores), str(scores)),
            truth("scores_descending", scores == sorted(scores, reverse=True), str(scores)),
        ]
        if self.tier == "tiny":
            checks.append(equal("top_k_tokens", tokens, GOLDEN_TOP_TOKENS))
            checks.append(close("top_k_scores", scores, GOLDEN_TOP_SCORES, ATOL))
        else:
            checks.append(
                truth(
                    f"predicts_{HUB_EXPECTED_TOKEN}",
                    HUB_EXPECTED_TOKEN in [t.lower() for t in tokens],
                    f"top {TOP_K}: {tokens}",
                )
            )
        return checks

    def from_pretrained_checks(self, model, tokenizer, logits) -> list[Check]:
        text = self.prompt(tokenizer)
        input_ids = tokenizer(text)["input_ids"]
        mask = input_ids.index(tokenizer.mask_token_id)
        top = logits[0, mask].softmax(-1).topk(TOP_K)
        piped = pipeline("fill-mask", model=model, tokenizer=tokenizer, device=self.device)
        predictions = piped(text, top_k=TOP_K)
        checks = [
            equal("pipeline_matches_logits_tokens", [p["token"] for p in predictions],
                  top.indices.tolist()),
            close("pipeline_matches_logits_scores", [p["score"] for p in predictions],
                  top.values, ATOL),
        ]  # fmt: skip
        if self.tier == "tiny":
            checks.append(equal("weights_sha256", weights_sha256(model), GOLDEN_WEIGHTS_SHA256))
            checks.append(equal("vocab_sha256", vocab_sha256(tokenizer), GOLDEN_VOCAB_SHA256))
            checks.append(equal("input_ids", input_ids, GOLDEN_INPUT_IDS))
            cased_ids = tokenizer(CASED_TEXT)["input_ids"]
            checks.append(equal("normalised_input_ids", cased_ids, GOLDEN_CASED_IDS))
            checks.append(close("logits_slice", logits[0, :3, :5], GOLDEN_LOGITS, ATOL))
            stats = torch.stack([logits[0].mean(-1), logits[0].std(-1)], dim=-1)
            checks.append(close("logits_stats", stats, GOLDEN_LOGITS_STATS, ATOL))
        return checks


if __name__ == "__main__":
    raise SystemExit(family_main(TestBertModels))
