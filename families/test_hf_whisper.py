"""The Whisper family: speech-to-text encoder-decoders (WhisperForConditionalGeneration) through
automatic-speech-recognition.

Run as a script (``python families/test_hf_whisper.py --model openai/whisper-tiny``) or through
pytest (``nox -s whisper``); any Whisper model id of this class runs with no new code. The input
is a synthetic 16 kHz sine sweep passed as an array with its sampling rate (no ffmpeg, no files).
The class oracle listens to real English speech (hfmatrix/data/speech.wav, spoken by espeak-ng)
and holds the greedy transcript's word error rate against the text it speaks to a bound.
"""

from __future__ import annotations

if __name__ == "__main__":  # where torch is missing, the arguments run in the family's environment
    from _script import run_in_family_environment

    run_in_family_environment(__file__)

import re
import tempfile
from pathlib import Path

import jiwer
import torch
from transformers import (
    AutoConfig,
    AutoModelForSpeechSeq2Seq,
    AutoProcessor,
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)
from transformers.models.whisper.modeling_whisper import sinusoids

from hfmatrix.checkpoints import grown_bpe, seed_parameters, vocab_sha256, weights_sha256
from hfmatrix.checks import Check, equal
from hfmatrix.cli import family_main
from hfmatrix.generation import fixed_length_greedy, greedy_new_ids
from hfmatrix.harness import FamilyTest
from hfmatrix.inputs import SPEECH_RATE, sine_sweep, speech
from hfmatrix.oracle import Bound, bounded, not_applicable

SAMPLING_RATE = 16000  # sine_sweep(): 1 s, 200 Hz -> 4 kHz at 16 kHz
NEW_TOKENS = 12  # greedy, EOS suppressed until then: a fixed-length transcript
LANGUAGE, TASK = "en", "transcribe"  # passed to generate() and the pipeline (multilingual models)
# What Whisper's generate() starts the decoder with for LANGUAGE and TASK, without timestamps;
# the direct logits are taken on the same prompt (English-only models: no language, no task).
DECODER_PROMPT = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
ENGLISH_ONLY_PROMPT = ["<|startoftranscript|>", "<|notimestamps|>"]
TEXT = " a sine sweep rising from low to high"  # the tokenizer's check: BPE merges, prefix, EOS
ATOL = 1e-3  # optimum-intel's Whisper tolerance (ANCHORS.md)

# The class oracle: the greedy transcript of inputs.speech() (7.9 s, 22 words, espeak-ng's
# en-us voice), forced to English transcription on multilingual models, scored by word error
# rate against speech.txt, both normalised (lowercase, punctuation removed). Whisper-tiny, the
# smallest Whisper, has a published LibriSpeech test-clean WER of 7.54% (the openai/whisper-tiny
# model card's evaluation; Radford et al. 2022 for the models); synthetic speech is further from
# its training data, so the bound allows several times that (measured when the speech was made:
# a float16 copy of whisper-tiny.en's released weights, run through this oracle, makes one
# error in 22 words, WER 0.045). An untrained model hears none of the words: WER ~1 or above
# (every word missed, plus whatever it inserts); so do those weights shuffled, or read with a
# permuted vocabulary.
ORACLE_NEW_TOKENS = 64  # ~30 tokens transcribe the speech; EOS ends the transcript earlier
WER_BOUND = Bound(
    0.5,
    "whisper-tiny's published LibriSpeech test-clean WER is 0.0754 (openai/whisper-tiny model "
    "card); an untrained model's is ~1 or more",
)
ENGLISH = "<|en|>"  # the language token a multilingual model must have to be told English

# The tiny checkpoint's byte-level BPE: printable ASCII bytes (the space as "Ġ"), words built by
# merges, then Whisper's special tokens in Whisper's order (the tokenizer finds a language token
# at <|startoftranscript|> + 1 + its index in Whisper's language list: en, zh, de, ...).
BYTES = ["Ġ", *(chr(b) for b in range(0x21, 0x7F))]
WORDS = ["the", "a", "sine", "sweep", "tone", "rising", "from", "low", "to", "high", "sound",
         "pitch", "hz"]  # fmt: skip
LANGUAGE_TOKENS = ["<|en|>", "<|zh|>", "<|de|>"]
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|startoftranscript|>", *LANGUAGE_TOKENS, "<|translate|>", "<|transcribe|>",
    "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>",
]  # fmt: skip
# Never generated (generation config's suppress_tokens), as in openai/whisper-*.
SUPPRESSED = ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
              "<|nocaptions|>"]  # fmt: skip
# A 2 s window (200 log-mel frames): the 1 s sweep is padded, as real audio is to 30 s.
FEATURE_EXTRACTOR = dict(feature_size=80, sampling_rate=SAMPLING_RATE, hop_length=160,
                         chunk_length=2, n_fft=400)  # fmt: skip
TINY_CONFIG = dict(  # WhisperModelTester-like sizes; 200 frames / conv stride 2 = 100 positions
    num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
    decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=100,
    max_target_positions=48,
)  # fmt: skip
SEED, INIT_STD = 3, 0.5  # greedy steps: top-2 logit gaps >= 0.12 (>> ATOL), 8 distinct tokens

# Golden values of the tiny checkpoint (families/golden/whisper.json): its weights, vocabulary
# and feature extractor as loaded, and its outputs on sine_sweep() (fp32, CPU). Random weights
# transcribe bytes, not words.


def byte_level_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The vocabulary and merges: every byte of BYTES, then each word of WORDS ("Ġ" + word)
    grown one character at a time, left to right."""
    return grown_bpe(BYTES, WORDS, prefix="Ġ")


def fe_settings(feature_extractor) -> dict:
    keys = ("feature_size", "sampling_rate", "hop_length", "chunk_length", "n_fft",
            "n_samples", "nb_max_frames", "padding_value")  # fmt: skip
    return {key: getattr(feature_extractor, key, None) for key in keys}


def multilingual(model) -> bool:
    """Whether generate() takes a language and a task (English-only models refuse them)."""
    config = model.generation_config
    return getattr(config, "is_multilingual", True) and all(
        hasattr(config, key) for key in ("lang_to_id", "task_to_id")
    )


def normalise(text: str) -> str:
    """Lowercase words without punctuation, single spaces: what word error rates compare."""
    return " ".join(re.sub(r"[^\w\s]|_", "", text.lower()).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after ``normalise``
    (jiwer's word-level edit distance); an empty hypothesis misses every word: 1."""
    hypothesis = normalise(hypothesis)
    return float(jiwer.wer(normalise(reference), hypothesis)) if hypothesis else 1.0


def first_step_logits(logits: torch.Tensor, config) -> torch.Tensor:
    """The decoder prompt's last logits as greedy generate() sees them at its first step: the
    generation config's suppress_tokens and begin_suppress_tokens, and EOS (min_new_tokens),
    ruled out."""
    eos = config.eos_token_id
    ruled_out = {*(config.suppress_tokens or []), *(config.begin_suppress_tokens or []),
                 *(eos if isinstance(eos, list) else [eos])}  # fmt: skip
    logits = logits.clone()
    logits[sorted(ruled_out)] = float("-inf")
    return logits


def tiny_whisper(path: Path) -> None:
    """The tiny checkpoint's recipe: the byte-level BPE with Whisper's special tokens, a seeded
    model with Whisper's fixed sinusoidal encoder positions, and a generation config that
    knows the languages and tasks, saved into ``path``."""
    vocab, merges = byte_level_bpe()
    tokenizer = WhisperTokenizer(
        vocab=vocab, merges=merges, extra_special_tokens=SPECIAL_TOKENS[1:]
    )
    ids = tokenizer.convert_tokens_to_ids
    eot = ids("<|endoftext|>")
    special = dict(
        decoder_start_token_id=ids("<|startoftranscript|>"), bos_token_id=eot,
        eos_token_id=eot, pad_token_id=eot, suppress_tokens=ids(SUPPRESSED),
        begin_suppress_tokens=[ids("Ġ"), eot],
    )  # fmt: skip
    model = WhisperForConditionalGeneration(
        WhisperConfig(vocab_size=len(tokenizer), **TINY_CONFIG, **special)
    )
    seed_parameters(model, SEED, INIT_STD)
    positions = model.model.encoder.embed_positions.weight  # fixed sinusoids in Whisper
    with torch.no_grad():
        positions.copy_(sinusoids(*positions.shape))
    model.generation_config = GenerationConfig(
        **special,
        is_multilingual=True,
        lang_to_id={token: ids(token) for token in LANGUAGE_TOKENS},
        task_to_id={task: ids(f"<|{task}|>") for task in ("translate", "transcribe")},
        no_timestamps_token_id=ids("<|notimestamps|>"),
    )
    processor = WhisperProcessor(WhisperFeatureExtractor(**FEATURE_EXTRACTOR), tokenizer)
    model.save_pretrained(path)
    processor.save_pretrained(path)


TINY = {"tiny-whisper": tiny_whisper}  # tiny model id -> recipe


class TestWhisperModels(FamilyTest):
    """Whisper models: log-mel features, logits on a fixed decoder prompt, greedy transcripts,
    and the ASR pipeline's text against the direct model's greedy ids."""

    family = "whisper"
    auto_model = AutoModelForSpeechSeq2Seq
    auto_processor = AutoProcessor
    openvino_class = "OVModelForSpeechSeq2Seq"
    new_tokens = NEW_TOKENS
    atol = ATOL
    tiny_recipes = TINY

    def language_task(self, model) -> dict:
        """generate()'s language and task where the model takes them (multilingual models)."""
        return {"language": LANGUAGE, "task": TASK} if multilingual(model) else {}

    def features(self, feature_extractor) -> torch.Tensor:
        audio = sine_sweep(rate=SAMPLING_RATE)
        inputs = feature_extractor(audio, sampling_rate=SAMPLING_RATE, return_tensors="pt")
        return inputs["input_features"].to(self.device)

    def prompt_ids(self, model, tokenizer) -> list[int]:
        tokens = DECODER_PROMPT if multilingual(model) else ENGLISH_ONLY_PROMPT
        return tokenizer.convert_tokens_to_ids(tokens)

    def model_inputs(self, model, processor) -> dict:
        prompt = torch.tensor([self.prompt_ids(model, processor.tokenizer)], device=self.device)
        features = self.features(processor.feature_extractor)
        return {"input_features": features, "decoder_input_ids": prompt}

    def generate_inputs(self, model, processor) -> dict:
        return {"input_features": self.features(processor.feature_extractor),
                **self.language_task(model)}  # fmt: skip

    def pipeline_parts(self, processor) -> dict:
        return {"tokenizer": processor.tokenizer, "feature_extractor": processor.feature_extractor}

    def transcribe(self, model, processor, audio) -> str:
        """The greedy English transcript of ``audio`` (at SPEECH_RATE): EOS ends it, or the
        decoder's positions (ORACLE_NEW_TOKENS at most)."""
        features = processor.feature_extractor(
            audio, sampling_rate=SPEECH_RATE, return_tensors="pt"
        )["input_features"].to(self.device)
        room = model.config.max_target_positions - len(self.prompt_ids(model, processor.tokenizer))
        greedy = fixed_length_greedy(min(ORACLE_NEW_TOKENS, room))
        del greedy["min_new_tokens"]  # a trained model ends its transcript with EOS
        ids = model.generate(input_features=features, **self.language_task(model), **greedy)
        return processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip()

    def oracle_checks(self, model, processor) -> list[Check]:
        """The transcript of English speech within WER_BOUND of the text it speaks."""
        name = "english_transcript_wer"
        languages = getattr(model.generation_config, "lang_to_id", None) or {}
        if multilingual(model) and ENGLISH not in languages:
            reason = (
                f"no {ENGLISH} in the generation config's lang_to_id: it cannot be told English"
            )
            return [not_applicable(name, reason)]
        audio, text = speech()
        transcript = self.transcribe(model, processor, audio)
        what = f"transcript {transcript[:200]!r} of speech.txt's text: word error rate"
        return [bounded(name, word_error_rate(text, transcript), WER_BOUND, what)]

    def pipeline_output(self, pipe) -> str:
        audio = {"raw": sine_sweep(rate=SAMPLING_RATE), "sampling_rate": SAMPLING_RATE}
        kwargs = {**self.language_task(pipe.model), **fixed_length_greedy(NEW_TOKENS)}
        return pipe(audio, generate_kwargs=kwargs)["text"]

    def export_openvino(self, ov_class):
        """Exported at the checkpoint's own audio length: optimum's dummy inputs assume
        Whisper's 3000 mel frames, which a checkpoint with other positions cannot take."""
        from optimum.exporters.openvino import main_export
        from optimum.intel import OVConfig

        from hfmatrix.backends import OPENVINO_F32

        config = AutoConfig.from_pretrained(self.source.location, **self.load_kwargs())
        self.export_dir = tempfile.TemporaryDirectory(prefix="hfmatrix-openvino-")
        main_export(self.source.location, output=self.export_dir.name, **self.load_kwargs(),
                    task="automatic-speech-recognition", ov_config=OVConfig(dtype="fp32"),
                    nb_max_frames=2 * config.max_source_positions)  # fmt: skip
        return ov_class.from_pretrained(self.export_dir.name, device="CPU", ov_config=OPENVINO_F32)

    def pipeline_checks(self, pipe) -> list[Check]:
        audio = {"raw": sine_sweep(rate=SAMPLING_RATE), "sampling_rate": SAMPLING_RATE}
        language_task = self.language_task(pipe.model)
        kwargs = {**language_task, **fixed_length_greedy(NEW_TOKENS)}
        text = pipe(audio, generate_kwargs=kwargs)["text"]
        inputs = {"input_features": self.features(pipe.feature_extractor), **language_task}
        new_ids = greedy_new_ids(pipe.model, inputs, NEW_TOKENS)
        decoded = pipe.tokenizer.decode(new_ids[0], skip_special_tokens=True)
        checks = [
            equal("pipeline_decodes_as_whisper", getattr(pipe, "type", None), "seq2seq_whisper"),
            equal("pipeline_text_matches_generate", text, decoded),
        ]
        if self.tier == "tiny":
            checks.append(self.golden_check("pipeline_text", text))
        return checks

    def from_pretrained_checks(self, model, processor, logits) -> list[Check]:
        tokenizer, feature_extractor = processor.tokenizer, processor.feature_extractor
        features = self.features(feature_extractor)
        prompt = self.prompt_ids(model, tokenizer)
        inputs = {"input_features": features, **self.language_task(model)}
        new_ids = greedy_new_ids(model, inputs, NEW_TOKENS)
        first_choice = int(first_step_logits(logits[0, -1], model.generation_config).argmax())
        frames = (1, feature_extractor.feature_size, feature_extractor.nb_max_frames)
        checks = [
            equal("features_shape", tuple(features.shape), frames),
            equal("logits_shape", tuple(logits.shape), (1, len(prompt), model.config.vocab_size)),
            equal("greedy_length", len(new_ids[0]), NEW_TOKENS),
            equal("first_greedy_token_is_logits_argmax", new_ids[0][0], first_choice),
        ]
        if self.tier == "tiny":
            stats = [features.mean(), features.std(), features.min(), features.max()]
            logits_stats = torch.stack([logits[0].mean(-1), logits[0].std(-1)], dim=-1)
            checks += [
                self.golden_check("weights_sha256", weights_sha256(model)),
                self.golden_check("vocab_sha256", vocab_sha256(tokenizer)),
                self.golden_check("feature_extractor_settings", fe_settings(feature_extractor)),
                self.golden_check("decoder_prompt_ids", prompt),
                self.golden_check("text_ids", tokenizer(TEXT)["input_ids"]),
                self.golden_check("features_stats", torch.stack(stats), ATOL),  # mean std min max
                # the end of the sweep, then padding
                self.golden_check("features_slice", features[0, ::16, 98:102], ATOL),
                self.golden_check("logits_slice", logits[0, :, :6], ATOL),  # on DECODER_PROMPT
                self.golden_check("logits_stats", logits_stats, ATOL),  # per position: mean, std
                self.golden_check("greedy_ids", new_ids[0]),
                self.golden_check("greedy_transcript",
                                  tokenizer.decode(new_ids[0], skip_special_tokens=True)),
            ]  # fmt: skip
        return checks


if __name__ == "__main__":
    raise SystemExit(family_main(TestWhisperModels))
