"""The BERT family: masked language models (BertForMaskedLM and kin) through fill-mask.

Run as a script (``python families/test_hf_bert.py --model bert-base-uncased``) or through
pytest (``nox -s bert``); any masked-LM model id of this class runs with no new code.
"""

from __future__ import annotations

if __name__ == "__main__":  # where torch is missing, the arguments run in the family's environment
    from _script import run_in_family_environment

    run_in_family_environment(__file__)

import functools
from collections.abc import Callable

import torch
from transformers import (
    AlbertConfig,
    AlbertForMaskedLM,
    AlbertTokenizer,
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertTokenizer,
    CamembertConfig,
    CamembertForMaskedLM,
    CamembertTokenizer,
    DebertaV2Config,
    DebertaV2ForMaskedLM,
    DebertaV2Tokenizer,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertTokenizer,
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraTokenizer,
    MPNetConfig,
    MPNetForMaskedLM,
    MPNetTokenizer,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaTokenizer,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
    XLMRobertaTokenizer,
    pipeline,
)

from hfmatrix import likelihood
from hfmatrix.checkpoints import (
    byte_symbols,
    grown_bpe,
    tiny_recipe,
    vocab_sha256,
    weights_sha256,
)
from hfmatrix.checks import Check, close, equal, truth
from hfmatrix.cli import family_main
from hfmatrix.harness import FamilyTest
from hfmatrix.oracle import Bound, Published, bounded, not_applicable

PROMPT = "paris is the {mask} of france."
CASED_TEXT = "Paris is the CAPITAL of Frânce!"  # the uncased tokenizer lowercases, strips accents
TOP_K = 5
ATOL = 1e-4  # transformers' integration tests and optimum-intel's masked-LM tolerance

# The class oracle (hub and local models): a trained masked LM finds plain English likely,
# each token predicted from both sides, and knows a fact.
FACT_TOKEN = "capital"  # in the top 5 for PROMPT: a fact only a trained masked LM knows
PSEUDO_NLL_SOURCE = (
    "0.6 x ln(vocabulary size), as for causal LMs (GPT-2 small's WikiText-2 perplexity, 29.41, "
    "is 0.31 x ln V); a masked LM sees both sides of each token (Salazar et al. 2020), so a "
    "trained one scores lower still"
)

# Published values, each with its source: transformers' integration tests of BertModel and
# DistilBertModel (the encoder's last hidden state on fixed ids, [:, 1:4, 1:4], within the
# tests' atol 1e-4; a masked LM's last hidden_states entry is that output) and the fill-mask
# example of the model cards (the top 5 token ids exactly, their scores within ATOL: the
# cards state no tolerance). Figures verbatim.
HIDDEN_INPUT_IDS = [[0, 345, 232, 328, 740, 140, 1695, 69, 6078, 1588, 2]]
HIDDEN_ATTENTION_MASK = [[0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]  # the first position masked
CARD_TEXT = "Hello I'm a {mask} model."
TESTS = "huggingface/transformers tests/models/{0}/test_modeling_{0}.py {1}"


def published_values(test: str, hidden_slice: list, card: str, ids: list, scores: list):
    """A checkpoint's Published: its integration ``test``'s hidden-state slice, its model
    ``card``'s fill-mask top 5 ``ids`` and ``scores``."""
    values = {
        "last_hidden_state_slice": dict(cite=test, input_ids=HIDDEN_INPUT_IDS,
                                        attention_mask=HIDDEN_ATTENTION_MASK,
                                        value=hidden_slice, atol=1e-4),
        "fill_mask_top_ids": dict(cite=card, text=CARD_TEXT, value=ids),
        "fill_mask_top_scores": dict(cite=card, text=CARD_TEXT, value=scores, atol=ATOL),
    }  # fmt: skip
    return Published(source=f"{test}; {card}", values=values)


BERT_BASE_UNCASED = published_values(
    TESTS.format("bert", "BertModelIntegrationTest.test_inference_no_head_absolute_embedding"),
    [[[0.4249, 0.1008, 0.7531], [0.3771, 0.1188, 0.7467], [0.4152, 0.1098, 0.7108]]],
    "the bert-base-uncased model card (fill-mask example)",
    [4827, 2535, 2047, 3565, 2986],  # fashion role new super fine
    [0.1073106899857521, 0.08774490654468536, 0.05338378623127937, 0.04667217284440994,
     0.027095865458250046],
)  # fmt: skip
DISTILBERT_BASE_UNCASED = published_values(
    TESTS.format("distilbert",  # the test class's name is spelt so
                 "DistilBertModelIntergrationTest.test_inference_no_head_absolute_embedding"),
    [[[-0.1639, 0.3299, 0.1648], [-0.1746, 0.3289, 0.1710], [-0.1884, 0.3357, 0.1810]]],
    "the distilbert-base-uncased model card (fill-mask example)",
    [2535, 4827, 2449, 2944, 11643],  # role fashion business model modeling
    [0.05292855575680733, 0.03968575969338417, 0.034743521362543106, 0.03462274372577667,
     0.018145186826586723],
)  # fmt: skip
PUBLISHED = {
    "bert-base-uncased": BERT_BASE_UNCASED,
    "google-bert/bert-base-uncased": BERT_BASE_UNCASED,
    "distilbert-base-uncased": DISTILBERT_BASE_UNCASED,
    "distilbert/distilbert-base-uncased": DISTILBERT_BASE_UNCASED,
}

# The tiny checkpoints' vocabularies: the same English words in each class's own kind of
# tokenizer (WordPiece, byte-level BPE, SentencePiece Unigram), with its special tokens.
WORDS = [
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "it",
    "at", "from", "his", "an", "were", "are", "which", "this", "be", "or", "has", "had", "not",
    "first", "one", "their", "its", "new", "after", "but", "who", "they", "have", "her", "she",
    "two", "been", "other", "when", "there", "all", "during", "into", "school", "time", "may",
    "years", "more", "most", "only", "over", "city", "some", "world", "would", "where", "later",
    "up", "such", "used", "many", "can", "state", "about", "national", "out", "known",
    "university", "united", "then", "made", "paris", "france", "capital", "river", "country",
]  # fmt: skip
LETTERS = "abcdefghijklmnopqrstuvwxyz"
VOCAB = [  # WordPiece: BERT, DistilBERT, ELECTRA
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *".,!?'",
    *LETTERS, *(f"##{c}" for c in LETTERS), *WORDS, "##s", "##ed", "##ing", "##ly",
]  # fmt: skip
MPNET_VOCAB = ["<s>", "<pad>", "</s>", "<unk>", *VOCAB, "<mask>"]  # fairseq's + WordPiece
BPE_VOCAB, BPE_MERGES = grown_bpe(  # byte-level BPE: RoBERTa
    ["<s>", "<pad>", "</s>", "<unk>", *byte_symbols()], WORDS, prefix="Ġ"
)
BPE_VOCAB["<mask>"] = len(BPE_VOCAB)
UNIGRAM = [  # SentencePiece Unigram pieces and scores, after each class's special tokens
    ("▁", -3.0),
    *((f"▁{word}", round(-4.0 - 0.01 * i, 2)) for i, word in enumerate(WORDS)),
    *((suffix, -7.0) for suffix in ("s", "ed", "ing", "ly")),
    *((c, round(-9.0 - 0.01 * i, 2)) for i, c in enumerate(f"{LETTERS}.,!?'")),
]


CAMEMBERT_SPECIAL = [
    (token, 0.0) for token in ("<s>NOTUSED", "<pad>", "</s>NOTUSED", "<unk>", "<s>", "</s>")
]


def pieces(*special: str) -> list[tuple[str, float]]:
    return [*((token, 0.0) for token in special), *UNIGRAM]


SIZES = dict(  # transformers' model testers' sizes
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
    max_position_embeddings=64,
)  # fmt: skip
ROBERTA_SIZES = dict(SIZES, max_position_embeddings=66, type_vocab_size=1)  # 2 + positions
SEED, INIT_STD = 1234, 0.5


# a tiny checkpoint: the class from its config, seeded weights, its tokenizer
recipe = functools.partial(tiny_recipe, seed=SEED, std=INIT_STD)


def wordpiece(tokenizer_class, vocab: list[str] = VOCAB) -> Callable[[], object]:
    return lambda: tokenizer_class(vocab={token: i for i, token in enumerate(vocab)})


V, U = len(VOCAB), len(UNIGRAM)
BERT_CONFIG = dict(vocab_size=V, type_vocab_size=2, **SIZES)
TINY = {  # tiny model id -> recipe: one per class the family tests
    "tiny-bert": recipe(BertForMaskedLM, BertConfig(**BERT_CONFIG), wordpiece(BertTokenizer)),
    "tiny-distilbert": recipe(
        DistilBertForMaskedLM,
        DistilBertConfig(vocab_size=V, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                         max_position_embeddings=64),
        wordpiece(DistilBertTokenizer)),
    "tiny-electra": recipe(ElectraForMaskedLM,
                           ElectraConfig(vocab_size=V, embedding_size=16, **SIZES),
                           wordpiece(ElectraTokenizer)),
    "tiny-roberta": recipe(
        RobertaForMaskedLM, RobertaConfig(vocab_size=len(BPE_VOCAB), **ROBERTA_SIZES),
        lambda: RobertaTokenizer(vocab=BPE_VOCAB, merges=BPE_MERGES)),
    "tiny-xlm-roberta": recipe(
        XLMRobertaForMaskedLM, XLMRobertaConfig(vocab_size=U + 5, **ROBERTA_SIZES),
        lambda: XLMRobertaTokenizer(vocab=pieces("<s>", "<pad>", "</s>", "<unk>", "<mask>"))),
    "tiny-camembert": recipe(  # CamemBERT's own layout: unused <s> and </s> first
        CamembertForMaskedLM,
        CamembertConfig(vocab_size=U + 7, bos_token_id=4, eos_token_id=5, **ROBERTA_SIZES),
        lambda: CamembertTokenizer(vocab=[*CAMEMBERT_SPECIAL, *UNIGRAM, ("<mask>", 0.0)])),
    "tiny-albert": recipe(
        AlbertForMaskedLM, AlbertConfig(vocab_size=U + 5, embedding_size=16, **SIZES),
        lambda: AlbertTokenizer(vocab=pieces("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"))),
    "tiny-deberta-v2": recipe(
        DebertaV2ForMaskedLM,
        DebertaV2Config(vocab_size=U + 5, relative_attention=True, position_biased_input=False,
                        pos_att_type=["p2c", "c2p"], type_vocab_size=0, **SIZES),
        lambda: DebertaV2Tokenizer(vocab=pieces("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
                                   unk_id=1)),
    "tiny-mpnet": recipe(  # 32 relative position buckets: MPNet's encoder assumes 32
        MPNetForMaskedLM,
        MPNetConfig(vocab_size=len(MPNET_VOCAB), relative_attention_num_buckets=32,
                    **dict(SIZES, max_position_embeddings=66)),  # 2 + positions
        wordpiece(MPNetTokenizer, MPNET_VOCAB)),
}  # fmt: skip


class TestBertModels(FamilyTest):
    """Masked-LM models: fill-mask pipeline, direct logits, pipeline/logits agreement."""

    family = "bert"
    auto_model = AutoModelForMaskedLM
    auto_processor = AutoTokenizer
    openvino_class = "OVModelForMaskedLM"
    published = PUBLISHED
    tiny_recipes = TINY

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
            checks.append(self.golden_check("top_k_tokens", tokens))
            checks.append(self.golden_check("top_k_scores", scores, ATOL))
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
            stats = torch.stack([logits[0].mean(-1), logits[0].std(-1)], dim=-1)
            checks += [
                self.golden_check("weights_sha256", weights_sha256(model)),
                self.golden_check("vocab_sha256", vocab_sha256(tokenizer)),
                self.golden_check("input_ids", input_ids),
                self.golden_check("normalised_input_ids", tokenizer(CASED_TEXT)["input_ids"]),
                self.golden_check("logits_slice", logits[0, :3, :5], ATOL),  # [0, :3, :5]
                self.golden_check("logits_stats", stats, ATOL),  # per position: mean, std
            ]
        return checks

    def top_k(self, model, tokenizer, text: str) -> tuple[list[int], list[float]]:
        """The TOP_K token ids and probabilities the model gives the mask of ``text``."""
        inputs = tokenizer(text.format(mask=tokenizer.mask_token), return_tensors="pt")
        mask = inputs["input_ids"][0].tolist().index(tokenizer.mask_token_id)
        logits = model(**inputs.to(self.device)).logits[0, mask]
        top = logits.float().softmax(-1).topk(TOP_K)
        return top.indices.tolist(), top.values.tolist()

    def oracle_checks(self, model, tokenizer) -> list[Check]:
        """The passages' mean pseudo nll per token below the bound, and the fact: "capital"
        in the top 5 for PROMPT. Neither applies to a vocabulary that is not English."""
        reason = likelihood.not_english(tokenizer)
        if reason:
            return [
                not_applicable("pseudo_nll", reason),
                not_applicable(f"predicts_{FACT_TOKEN}", reason),
            ]
        limit = likelihood.vocab_bound(model.config.vocab_size).limit
        nll = likelihood.masked_pseudo_nll(model, tokenizer)
        ids, _ = self.top_k(model, tokenizer, PROMPT)
        tokens = [tokenizer.decode([i]).strip() for i in ids]
        return [
            bounded("pseudo_nll", nll, Bound(limit, PSEUDO_NLL_SOURCE), what="pseudo nll/token"),
            Check(f"predicts_{FACT_TOKEN}", FACT_TOKEN in [t.lower() for t in tokens],
                  f"top {TOP_K} for {PROMPT.format(mask=tokenizer.mask_token)!r}: {tokens}"),
        ]  # fmt: skip

    def published_checks(self, model, tokenizer, values: Published) -> list[Check]:
        """The integration test's hidden-state slice and the model card's fill-mask top 5."""
        figures = values.values
        ids, scores = figures["fill_mask_top_ids"], figures["fill_mask_top_scores"]
        top_ids, top_scores = self.top_k(model, tokenizer, ids["text"])
        checks = [
            self.hidden_slice_check(model, figures["last_hidden_state_slice"]),
            equal("fill_mask_top_ids", top_ids, ids["value"]),
            close("fill_mask_top_scores", top_scores, scores["value"], scores["atol"]),
        ]
        for check in checks:
            check.source = figures[check.name]["cite"]
        return checks

    def hidden_slice_check(self, model, figure: dict) -> Check:
        """The encoder's last hidden state on the published ids, [:, 1:4, 1:4], against the
        published slice (a model whose vocabulary lacks those ids is not the checkpoint)."""
        name, vocab_size = "last_hidden_state_slice", model.config.vocab_size
        top = max(max(row) for row in figure["input_ids"])
        if top >= vocab_size:
            detail = f"the published input ids reach {top}; this model has {vocab_size} tokens"
            return Check(name, False, detail)
        ids = torch.tensor(figure["input_ids"], device=self.device)
        mask = torch.tensor(figure["attention_mask"], device=self.device)
        output = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return close(name, output.hidden_states[-1][:, 1:4, 1:4], figure["value"], figure["atol"])


if __name__ == "__main__":
    raise SystemExit(family_main(TestBertModels))
