"""The T5 family: encoder-decoder text models (T5ForConditionalGeneration and kin).

Run as a script (``python families/test_hf_t5.py --model t5-small``) or through pytest
(``nox -s t5``); any seq2seq model id of this class runs with no new code. It tests T5, mT5
(gated GELU, an LM head of its own), BART (byte-level BPE, learned positions) and Pegasus
(Pegasus's Unigram ids, sinusoidal positions), each with a tiny checkpoint and golden values
(families/golden/t5.json).

Pipeline: transformers 4 drives these models with ``text2text-generation``; transformers 5
removed that task (with summarization and translation). On transformers 5 the run uses
``text-generation`` and hands it the model as from_pretrained loads it: from a path, that
task would load the config's causal-LM class where there is one (BART's decoder alone) and
fall back to the ``architectures`` class where there is none (T5's). It tokenises and calls
``generate`` as for any model. Its text output assumes the prompt leads the generated
sequence and cuts the prompt's token count off the decoder output, which is wrong for an
encoder-decoder model, so the run reads the pipeline's token ids (``return_tensors=True``)
and decodes them itself. The record's ``pipeline_task`` says which task ran.
"""

from __future__ import annotations

if __name__ == "__main__":  # where torch is missing, the arguments run in the family's environment
    from _script import run_in_family_environment

    run_in_family_environment(__file__)

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    BartTokenizer,
    MT5Config,
    MT5ForConditionalGeneration,
    PegasusConfig,
    PegasusForConditionalGeneration,
    PegasusTokenizer,
    T5Config,
    T5ForConditionalGeneration,
    T5TokenizerFast,
    pipeline,
)

from hfmatrix import compat, likelihood
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
from hfmatrix.generation import fixed_length_greedy, greedy_margins, pipeline_ids
from hfmatrix.harness import FamilyTest
from hfmatrix.oracle import Bound, Published, bounded, not_applicable

PROMPT = "translate English to German: The house is wonderful."
TARGET = "Das Haus ist wunderbar."  # teacher-forced decoder input for the logits
SENTINEL_TEXT = "The <extra_id_0> walks in <extra_id_1> park."  # T5's span-corruption form
WIDE_TEXT = "".join(  # "The house is wonderful!" in full-width forms: NFKC maps them back
    chr(ord(c) + 0xFEE0) if c != " " else c for c in "The house is wonderful!"
)
NEW_TOKENS = 16  # greedy, EOS suppressed: exactly this many new tokens, compared id by id
ATOL = 1e-4  # same-backend golden values (ANCHORS: 5e-3 is for OpenVINO vs PyTorch)

# The class oracle (hub and local models). T5's pretraining objective is span corruption
# (original T5 mixes it with supervised tasks; v1.1 and the models fine-tuned from it, Flan
# among them, start from it alone): a trained model restores the dropped spans of plain
# English from their sentinels (likelihood.span_corruptions of the passages).
SPAN_NLL_SOURCE = (
    "0.6 x ln(vocabulary size), the language families' bound; a T5-base-size model's "
    "held-out C4 span-corruption nll is 1.94 nats after 65,536 steps (Shazeer 2020, GLU "
    "Variants; quoted by nanoT5), 0.19 x ln 32128"
)
TRANSLATION_TASK = "translation_en_to_de"  # config.task_specific_params: its prefix
TRANSLATION_SOURCE = "The house is wonderful."
TRANSLATION = "Das Haus ist wunderbar"  # T5's documentation, t5-small's greedy output
TRANSLATION_TOKENS = 20  # greedy new tokens at most (EOS ends it)

# Published values of t5-small, each with its source: transformers' integration tests and
# T5's documentation (its Training and Inference examples). Figures verbatim.
T5_TESTS = "huggingface/transformers tests/models/t5/test_modeling_t5.py T5ModelIntegrationTests"
T5_DOCS = "huggingface/transformers docs/source/en/model_doc/t5.md (t5-small examples)"
T5_SMALL = Published(
    source=f"{T5_TESTS}; {T5_DOCS}",
    values={
        # -(target tokens x mean loss) of the target given the input, within 1e-4
        "mtf_score": dict(cite=f"{T5_TESTS}.test_small_integration_test", input="Hello there",
                          target="Hi I am", value=-19.0845, atol=1e-4),
        # greedy, max_length 8 (the decoder start token included): exact text
        "summary": dict(cite=f"{T5_TESTS}.test_small_generation",
                        input="summarize: Hello there", max_length=8, text="Hello there!"),
        # mean losses, printed to 4 decimals
        "denoising_loss": dict(cite=T5_DOCS, input="The <extra_id_0> walks in <extra_id_1> park",
                               target="<extra_id_0> cute dog <extra_id_1> the <extra_id_2>",
                               value=3.7837, atol=1e-4),
        "translation_loss": dict(cite=T5_DOCS, input=PROMPT, target=TARGET, value=0.2542,
                                 atol=1e-4),
        # greedy (generate's default then: at most 20 tokens): exact text
        "translation": dict(cite=T5_DOCS, input=PROMPT, max_length=20,
                            text="Das Haus ist wunderbar."),
    },
)  # fmt: skip
PUBLISHED = {"t5-small": T5_SMALL, "google-t5/t5-small": T5_SMALL}

# The tiny checkpoint's Unigram (SentencePiece-style) vocabulary, laid out as T5's: <pad>,
# </s>, <unk>, the pieces, then the sentinels <extra_id_{EXTRA_IDS-1}> ... <extra_id_0>.
# Scores are log-probabilities: words beat suffixes beat single characters.
WORDS = [
    "translate", "English", "to", "German", "French", "summarize", "question", "answer",
    "The", "the", "house", "is", "wonderful", "small", "big", "a", "of", "and", "in", "on",
    "it", "was", "cat", "dog", "sat", "mat", "park", "walks", "city", "river", "Das", "Haus",
    "ist", "wunderbar", "klein", "der", "die", "und", "Hund", "Katze", "La", "maison", "est",
    "le", "et",
]  # fmt: skip
SUFFIXES = ["ed", "ing", "er", "en", "es"]
CHARACTERS = [
    *"abcdefghijklmnopqrstuvwxyz", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", *"0123456789", *".,:;!?'-",
]  # fmt: skip
EXTRA_IDS = 8
SPECIAL = ["<pad>", "</s>", "<unk>"]
TEXT_PIECES = [
    ("▁", -3.0),
    *((f"▁{word}", round(-4.0 - 0.01 * i, 2)) for i, word in enumerate(WORDS)),
    *((suffix, round(-7.0 - 0.01 * i, 2)) for i, suffix in enumerate(SUFFIXES)),
    *((char, round(-9.0 - 0.01 * i, 2)) for i, char in enumerate(CHARACTERS)),
]
PIECES = [
    *((token, 0.0) for token in SPECIAL),
    *TEXT_PIECES,
    *((f"<extra_id_{i}>", 0.0) for i in reversed(range(EXTRA_IDS))),
]
TINY_CONFIG = dict(  # transformers' T5ModelTester sizes; t5-small's ReLU and tied embeddings
    vocab_size=len(PIECES), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=2,
    num_heads=4, relative_attention_num_buckets=8, feed_forward_proj="relu",
    tie_word_embeddings=True, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
)  # fmt: skip
MT5_CONFIG = dict(TINY_CONFIG, feed_forward_proj="gated-gelu")  # its head: tiny_mt5

# BART's tokenizer: byte-level BPE (GPT-2's 256 byte symbols after BART's <s> <pad> </s>
# <unk>), each of WORDS one token after a space, <mask> last; <s> ... </s> around a sequence.
BPE_VOCAB, BPE_MERGES = grown_bpe(
    ["<s>", "<pad>", "</s>", "<unk>", *byte_symbols()], WORDS, prefix="Ġ"
)
BPE_VOCAB["<mask>"] = len(BPE_VOCAB)
BART_CONFIG = dict(  # T5's sizes; BART's ids: <s> 0, <pad> 1, </s> 2, the decoder starts at </s>
    vocab_size=len(BPE_VOCAB), d_model=32, encoder_layers=2, decoder_layers=2,
    encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
    max_position_embeddings=64, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    decoder_start_token_id=2,
)  # fmt: skip
# Pegasus's tokenizer: a Unigram with the text pieces above, its ids laid out as google/pegasus-*'s
# are: <pad> 0, </s> 1, <mask_1> (masked sentences) 2, <mask_2> (masked words) 3, the reserved
# <unk_2> ... <unk_102>, then <unk> (105) and the pieces; </s> after every sequence.
PEGASUS_OFFSET = 103  # PegasusTokenizer's offset: ids reserved before <unk>
PEGASUS_PIECES = [
    *((token, 0.0) for token in ("<pad>", "</s>", "<mask_1>", "<mask_2>")),
    *((f"<unk_{i}>", -100.0) for i in range(2, PEGASUS_OFFSET)),
    ("<unk>", 0.0),
    *TEXT_PIECES,
]
# BART's sizes; google/pegasus-*'s ReLU and ids. Their embeddings are scaled by sqrt(d_model):
# seeded at d_model 32, the decoder then repeats one token at every std tried (0.1 to 1.5, 8
# seeds; its tied head maps the scaled input embedding back to itself), so tiny-pegasus keeps
# PegasusConfig's default, unscaled.
PEGASUS_CONFIG = dict(
    vocab_size=len(PEGASUS_PIECES), d_model=32, encoder_layers=2, decoder_layers=2,
    encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
    max_position_embeddings=64, activation_function="relu", scale_embedding=False,
    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, forced_eos_token_id=1,
)  # fmt: skip
SEED, INIT_STD = 1234, 0.7  # tiny-t5: top-1 vs top-2 logit gaps >= 0.046 (>> ATOL), 13 ids
MT5_INIT_STD = 0.5  # tiny-mt5 (gated GELU, untied head): gaps >= 0.13, 10 distinct ids


def unigram_tokenizer():
    """The tiny checkpoint's tokenizer, built as T5's own is: Unigram model, SentencePiece's
    nmt_nfkc normaliser (its precompiled character map: the only normaliser transformers 5's
    T5Tokenizer keeps), metaspace pre-tokenizer and decoder, </s> after every sequence.
    The map's bytes vary with the sentencepiece release (0.2.2 and 0.2.3 differ), so
    tokenizer.json's do too; the token ids checked here do not."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    backend = Tokenizer(Unigram(PIECES, unk_id=SPECIAL.index("<unk>"), byte_fallback=False))
    backend.normalizer = normalizers.Precompiled(nfkc_charsmap())
    metaspace = dict(replacement="▁", prepend_scheme="always", split=True)
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(**metaspace)]
    )
    backend.decoder = decoders.Metaspace(**metaspace)
    eos = ("</s>", SPECIAL.index("</s>"))
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[eos]
    )
    return T5TokenizerFast(tokenizer_object=backend, extra_ids=EXTRA_IDS)


def nfkc_charsmap() -> bytes:
    """SentencePiece's nmt_nfkc normaliser as its precompiled character map."""
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    spec = sentencepiece_model_pb2.NormalizerSpec()
    rules = sentencepiece.SentencePieceNormalizer(rule_name="nmt_nfkc")
    spec.ParseFromString(rules.serialized_normalizer_spec())
    return spec.precompiled_charsmap


def pegasus_tokenizer() -> PegasusTokenizer:
    """The tiny Pegasus checkpoint's tokenizer (PEGASUS_PIECES), built by its class as
    google's converted ones are: nmt_nfkc's map, then runs of spaces folded into one."""
    return PegasusTokenizer(
        vocab=PEGASUS_PIECES, _spm_precompiled_charsmap=nfkc_charsmap(), offset=PEGASUS_OFFSET
    )


def tiny_pegasus(path: Path) -> None:
    """The tiny Pegasus checkpoint: weights seeded at SEED, INIT_STD, except the tables the
    model freezes (requires_grad false: its sinusoidal positions), which keep the values the
    config defines, as google's checkpoints carry them; every stack loads them from the file."""
    model = PegasusForConditionalGeneration(PegasusConfig(**PEGASUS_CONFIG))
    fixed = {
        name: param.detach().clone()
        for name, param in model.named_parameters()
        if not param.requires_grad
    }
    seed_parameters(model, SEED, INIT_STD)
    with torch.no_grad():
        for name, values in fixed.items():
            model.get_parameter(name).copy_(values)
    model.save_pretrained(path)
    pegasus_tokenizer().save_pretrained(path)


def tiny_mt5(path: Path) -> None:
    """The tiny mT5 checkpoint, as google's are: gated GELU, an LM head of its own (config
    tie_word_embeddings false), the encoder's and decoder's embeddings the shared ones.
    transformers 5's MT5Config ties the head whatever it is given (loading unties it where a
    checkpoint's head differs from the embeddings), so the recipe unties the head of the model
    it builds before seeding it; every stack then loads it untied and unscaled (transformers 4
    scales a tied head's input by d_model**-0.5, as T5's; 5 does not)."""
    model = MT5ForConditionalGeneration(MT5Config(**MT5_CONFIG))
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    model.config.tie_word_embeddings = False
    seed_parameters(model, SEED, MT5_INIT_STD)
    model.save_pretrained(path)
    unigram_tokenizer().save_pretrained(path)


def byte_level_bpe() -> BartTokenizer:
    """The tiny BART checkpoint's tokenizer (BPE_VOCAB, BPE_MERGES)."""
    return BartTokenizer(vocab=BPE_VOCAB, merges=BPE_MERGES)


# tiny model id -> recipe (checkpoints.tiny_recipe: the class from its config, weights seeded
# at (seed, std), its tokenizer): one per class the family tests. Each gives greedy ids of
# several tokens whose top-1/top-2 logit gaps are all >> ATOL (noted below). BART's decoder,
# randomly initialised, repeats one token at T5's std (its attention saturates) and at small
# ones (its tied LM head maps each input embedding back to itself): 0.35 lies between.
TINY = {
    "tiny-t5": tiny_recipe(T5ForConditionalGeneration, T5Config(**TINY_CONFIG),
                           unigram_tokenizer, SEED, INIT_STD),
    "tiny-mt5": tiny_mt5,  # seeded at SEED, MT5_INIT_STD
    "tiny-bart": tiny_recipe(BartForConditionalGeneration, BartConfig(**BART_CONFIG),
                             byte_level_bpe, seed=3, std=0.35),  # gaps >= 0.015, 5 ids
    "tiny-pegasus": tiny_pegasus,  # gaps >= 0.63, 4 ids
}  # fmt: skip

# Golden values of each tiny checkpoint (families/golden/t5.json): its weights and vocabulary
# as loaded, and its outputs on PROMPT (fp32, CPU). tiny-t5's generated text skips the
# <extra_id_2> it generated.


@contextmanager
def no_causal_lm_complaint() -> Iterator[None]:
    """transformers 5's text-generation pipeline logs an error (with the list of every causal
    LM class) for a model outside that list, then runs it: drop that one message; the
    record names the task instead."""

    def keep(record: logging.LogRecord) -> bool:
        return "is not supported for text-generation" not in record.getMessage()

    logger = logging.getLogger("transformers.pipelines.base")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


class TestT5Models(FamilyTest):
    """Seq2seq LMs: pipeline greedy ids and text, direct logits and greedy ids, their
    agreement, and teacher forcing against cached decoding."""

    family = "t5"
    auto_model = AutoModelForSeq2SeqLM
    auto_processor = AutoTokenizer
    openvino_class = "OVModelForSeq2SeqLM"
    new_tokens = NEW_TOKENS
    openvino_atol = 5e-3  # optimum-intel's T5 tolerance (ANCHORS.md)
    published = PUBLISHED
    tiny_recipes = TINY

    def pipeline_task(self) -> str:
        return compat.seq2seq_task()

    def load_pipeline(self, dtype: str = "float32") -> Any:
        """text2text-generation loads the checkpoint itself; text-generation gets the
        encoder-decoder model under test (see the module's docstring)."""
        with no_causal_lm_complaint():
            if self.pipeline_task() == compat.SEQ2SEQ_TASK:
                return super().load_pipeline(dtype)
            model, tokenizer, _ = self.load_model(dtype)
            return pipeline(self.pipeline_task(), model=model, tokenizer=tokenizer,
                            device=self.device)  # fmt: skip

    def inputs(self, tokenizer) -> dict[str, torch.Tensor]:
        return tokenizer(PROMPT, return_tensors="pt").to(self.device)

    def decoder_input_ids(self, model, tokenizer) -> torch.Tensor:
        """The decoder start token, then TARGET (teacher forcing)."""
        start = model.generation_config.decoder_start_token_id
        ids = [start, *tokenizer(TARGET, add_special_tokens=False)["input_ids"]]
        return torch.tensor([ids], device=self.device)

    def model_inputs(self, model, tokenizer) -> dict:
        return {
            **self.inputs(tokenizer),
            "decoder_input_ids": self.decoder_input_ids(model, tokenizer),
        }

    def generate_inputs(self, model, tokenizer) -> dict:
        return dict(self.inputs(tokenizer))

    def pipeline_output(self, pipe) -> list[int]:
        return pipeline_ids(pipe, PROMPT, NEW_TOKENS)

    def pipeline_checks(self, pipe) -> list[Check]:
        generate = fixed_length_greedy(NEW_TOKENS)
        ids = self.pipeline_output(pipe)  # the decoder start token, then the new tokens
        direct = self.greedy(pipe.model, pipe.tokenizer)
        start = pipe.model.generation_config.decoder_start_token_id
        checks = [
            equal("starts_with_decoder_start", ids[:1], [start]),
            equal("pipeline_ids_match_direct_greedy", ids[1:], direct),
        ]
        if pipe.task == compat.SEQ2SEQ_TASK:  # the pipeline's own text
            text = pipe(PROMPT, **generate)[0]["generated_text"]
            decoded = pipe.tokenizer.decode(direct, skip_special_tokens=True)
            checks.append(equal("text_is_greedy_ids_decoded", text, decoded))
        else:  # text-generation's text would cut the prompt's length off the decoder output
            text = pipe.tokenizer.decode(ids, skip_special_tokens=True)
        if self.tier == "tiny":
            checks.append(self.golden_check("generated_ids", ids[1:]))
            checks.append(self.golden_check("generated_text", text))
        return checks

    def from_pretrained_checks(self, model, tokenizer, logits) -> list[Check]:
        input_ids = tokenizer(PROMPT)["input_ids"]
        decoder_input_ids = self.decoder_input_ids(model, tokenizer)
        new_ids = self.greedy(model, tokenizer)
        # One teacher-forced pass over the start token + generated ids (no cache) must pick
        # the tokens cached decoding picked: the chosen logit is the maximum, within ATOL.
        # EOS is masked as generate's min_new_tokens masks it.
        start = model.generation_config.decoder_start_token_id
        forced = torch.tensor([[start, *new_ids[:-1]]], device=self.device)
        steps = model(**self.inputs(tokenizer), decoder_input_ids=forced).logits[0]
        checks = [
            equal("logits_shape", list(logits.shape),
                  [1, decoder_input_ids.shape[1], model.config.vocab_size]),
            equal("prompt_ends_with_eos", input_ids[-1:], [tokenizer.eos_token_id]),
            equal("new_token_count", len(new_ids), NEW_TOKENS),
            close("greedy_ids_are_argmax_without_cache",
                  greedy_margins(steps, new_ids, model.generation_config),
                  torch.zeros(NEW_TOKENS), ATOL),
            equal("decode_round_trip", tokenizer.decode(input_ids, skip_special_tokens=True),
                  PROMPT),
        ]  # fmt: skip
        if self.tier == "tiny":
            stats = torch.stack([logits[0].mean(-1), logits[0].std(-1)], dim=-1)
            checks += [
                self.golden_check("weights_sha256", weights_sha256(model)),
                self.golden_check("vocab_sha256", vocab_sha256(tokenizer)),
                self.golden_check("input_ids", input_ids),
                *self.tokenizer_form_checks(tokenizer),
                self.golden_check("logits_slice", logits[0, :3, :5], ATOL),  # [0, :3, :5]
                self.golden_check("logits_stats", stats, ATOL),  # per position: mean, std
                self.golden_check("greedy_ids", new_ids),
            ]
        return checks

    def tokenizer_form_checks(self, tokenizer) -> list[Check]:
        """The ids of the span-corruption form, where the tokenizer has T5's sentinels, and of
        full-width text: NFKC folds it into ASCII pieces in a SentencePiece-style tokenizer;
        a byte-level BPE (BART's) has no normaliser by design and keeps its UTF-8 bytes, so
        there the text must decode back unchanged. Decided by the tokenizer's model, not by
        a normaliser's presence: a SentencePiece tokenizer that lost its map must fail."""
        checks = []
        if no_sentinels(tokenizer) is None:
            checks.append(self.golden_check("sentinel_input_ids",
                                            tokenizer(SENTINEL_TEXT)["input_ids"]))  # fmt: skip
        wide_ids = tokenizer(WIDE_TEXT)["input_ids"]
        if not byte_level(tokenizer):
            return [*checks, self.golden_check("normalised_input_ids", wide_ids)]
        decoded = tokenizer.decode(wide_ids, skip_special_tokens=True)
        return [*checks, self.golden_check("wide_input_ids", wide_ids),
                equal("wide_text_round_trip", decoded, WIDE_TEXT)]  # fmt: skip

    def oracle_checks(self, model, tokenizer) -> list[Check]:
        """The span-corruption targets' mean nll per token below the bound (an English
        vocabulary with T5's sentinels), and the translation where the checkpoint declares
        English to German."""
        reason = likelihood.not_english(tokenizer) or no_sentinels(tokenizer)
        if reason:
            nll = not_applicable("span_corruption_nll", reason)
        else:
            pairs = [
                pair for text in likelihood.PASSAGES for pair in likelihood.span_corruptions(text)
            ]
            limit = likelihood.vocab_bound(model.config.vocab_size).limit
            value = likelihood.seq2seq_nll(model, tokenizer, pairs)
            nll = bounded("span_corruption_nll", value, Bound(limit, SPAN_NLL_SOURCE),
                          what="target nll/token")  # fmt: skip
        return [nll, self.translation_check(model, tokenizer)]

    def translation_check(self, model, tokenizer) -> Check:
        """Greedy decoding of "<prefix>The house is wonderful." contains TRANSLATION."""
        name = "translates_en_to_de"
        task = (getattr(model.config, "task_specific_params", None) or {}).get(TRANSLATION_TASK)
        if not task or "prefix" not in task:
            why = f"the checkpoint declares no {TRANSLATION_TASK} (config.task_specific_params)"
            return not_applicable(name, why)
        text = self.generate_text(
            model, tokenizer, task["prefix"] + TRANSLATION_SOURCE, TRANSLATION_TOKENS
        )
        return Check(
            name, TRANSLATION in text, f"{task['prefix'] + TRANSLATION_SOURCE!r} -> {text!r}"
        )

    def generate_text(self, model, tokenizer, text: str, new_tokens: int) -> str:
        """Plain greedy decoding of ``text`` (EOS ends it), decoded without special tokens."""
        inputs = tokenizer(text, return_tensors="pt").to(self.device)
        greedy = {**fixed_length_greedy(new_tokens), "min_new_tokens": 0}
        output = model.generate(**inputs, **greedy)
        return tokenizer.decode(output[0], skip_special_tokens=True)

    def published_checks(self, model, tokenizer, values: Published) -> list[Check]:
        """t5-small's figures from transformers' integration tests and T5's documentation."""
        figures = values.values
        score = figures["mtf_score"]
        loss, count = self.loss(model, tokenizer, score["input"], score["target"])
        checks = [close("mtf_score", -count * loss, score["value"], score["atol"])]
        for name in ("denoising_loss", "translation_loss"):
            figure = figures[name]
            loss, _ = self.loss(model, tokenizer, figure["input"], figure["target"])
            checks.append(close(name, loss, figure["value"], figure["atol"]))
        for name in ("summary", "translation"):
            figure = figures[name]
            text = self.generate_text(model, tokenizer, figure["input"], figure["max_length"] - 1)
            checks.append(equal(name, text, figure["text"]))
        for check in checks:
            check.source = figures[check.name]["cite"]
        return checks

    def loss(self, model, tokenizer, source: str, target: str) -> tuple[float, int]:
        """The model's mean loss on ``target`` (its EOS included) given ``source``, and the
        target's token count."""
        labels = tokenizer(target, return_tensors="pt")["input_ids"].to(self.device)
        inputs = tokenizer(source, return_tensors="pt").to(self.device)
        return float(model(**inputs, labels=labels).loss), labels.shape[-1]


def no_sentinels(tokenizer) -> str | None:
    """Why span corruption cannot judge a model whose tokenizer lacks T5's sentinels."""
    first = likelihood.T5_SENTINEL.format(0)
    if first in tokenizer.get_vocab():
        return None
    return f"no sentinel token {first}: not trained with T5's span corruption"


def byte_level(tokenizer) -> bool:
    """Whether ``tokenizer`` is a byte-level BPE (GPT-2's, BART's): every text its bytes."""
    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    return isinstance(getattr(backend, "pre_tokenizer", None), pre_tokenizers.ByteLevel)


if __name__ == "__main__":
    raise SystemExit(family_main(TestT5Models))
