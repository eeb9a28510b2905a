"""How likely a language model finds plain English: the text oracle of the language
families. A trained model's mean negative log-likelihood per token of plain English is far
below ln(vocabulary size), which is where uniform guessing (an untrained model) sits."""

from __future__ import annotations

import math
from typing import Any

from hfmatrix.checks import Check
from hfmatrix.oracle import Bound, bounded, not_applicable

# Short passages of plain English, written for hfmatrix (no quotation from any corpus).
PASSAGES = (
    "The weather was warm and sunny, so the children spent the whole afternoon playing in "
    "the park near their school. When it began to rain, they ran home for dinner.",
    "She opened the old book and began to read. The story was about a small village by the "
    "sea, where every family had a boat and the fishermen went out before dawn.",
    "Water boils at one hundred degrees Celsius at sea level. At higher altitudes the air "
    "pressure is lower, so water boils at a lower temperature and food takes longer to cook.",
)
SHARE_OF_LN_VOCAB = 0.6
NLL_SOURCE = (
    "0.6 x ln(vocabulary size): uniform guessing scores ln V; GPT-2 small's published "
    "WikiText-2 perplexity, 29.41 (Radford et al. 2019), is 3.38 nats, 0.31 x ln 50257"
)


def vocab_bound(vocab_size: int) -> Bound:
    """The bound on mean nll per token for a model with ``vocab_size`` tokens."""
    return Bound(SHARE_OF_LN_VOCAB * math.log(vocab_size), NLL_SOURCE)


def causal_nll(model: Any, tokenizer: Any, texts: tuple[str, ...] = PASSAGES) -> float:
    """Mean negative log-likelihood (nats) per predicted token of ``texts``, each scored on
    its own; the first token is predicted from the tokenizer's BOS where it has one. A text
    longer than the model's context (its max_position_embeddings) is scored up to it."""
    import torch

    context = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    total, count = 0.0, 0
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        bos = tokenizer.bos_token_id
        if bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        input_ids = torch.tensor([ids[:context]], device=model.device)
        logits = model(input_ids=input_ids).logits[0, :-1].float()
        losses = torch.nn.functional.cross_entropy(logits, input_ids[0, 1:], reduction="sum")
        total, count = total + float(losses), count + input_ids.shape[1] - 1
    return total / count


# Masked and sequence-to-sequence language models: the same passages, scored as each class
# was trained to predict text.
UNKNOWN_SHARE = 0.1  # more of the passages' tokens unknown than this: not an English vocabulary


def unknown_share(tokenizer: Any, texts: tuple[str, ...] = PASSAGES) -> float:
    """The share of ``texts``' tokens that ``tokenizer`` maps to its unknown token."""
    unknown = tokenizer.unk_token_id
    ids = [i for text in texts for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    return 0.0 if unknown is None or not ids else ids.count(unknown) / len(ids)


def not_english(tokenizer: Any, texts: tuple[str, ...] = PASSAGES) -> str | None:
    """Why ``texts`` cannot judge a model with this tokenizer (its vocabulary is not an
    English one: more than UNKNOWN_SHARE of their tokens unknown), or None."""
    share = unknown_share(tokenizer, texts)
    if share <= UNKNOWN_SHARE:
        return None
    return (
        f"not an English vocabulary: {share:.0%} of the English passages' tokens are its "
        f"unknown token {tokenizer.unk_token!r} (more than {UNKNOWN_SHARE:.0%})"
    )


def masked_pseudo_nll(model: Any, tokenizer: Any, texts: tuple[str, ...] = PASSAGES) -> float:
    """Mean pseudo negative log-likelihood (nats) per token of ``texts`` (Salazar et al.
    2020, "Masked Language Model Scoring"): each ordinary token is masked in turn and scored
    from the rest of its text (cut to the model's positions); a text's masked copies run as
    one batch."""
    import torch

    limit = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 512))
    total, count = 0.0, 0
    for text in texts:
        encoded = tokenizer(
            text, return_tensors="pt", return_special_tokens_mask=True, truncation=True,
            max_length=limit,
        )  # fmt: skip
        special = encoded.pop("special_tokens_mask")[0].bool()
        positions = (~special).nonzero().flatten().to(model.device)
        copies = len(positions)
        batch = {key: value.to(model.device).repeat(copies, 1) for key, value in encoded.items()}
        rows = torch.arange(copies, device=model.device)
        truth = batch["input_ids"][rows, positions].clone()
        batch["input_ids"][rows, positions] = tokenizer.mask_token_id
        logits = model(**batch).logits[rows, positions].float()
        loss = torch.nn.functional.cross_entropy(logits, truth, reduction="sum")
        total, count = total + float(loss), count + copies
    return total / count


NOISE_SPAN = 3  # words a dropped span holds: T5's mean noise span length (in its tokens)
NOISE_PERIOD = 7  # one span in 7 dropped per copy: 3/21 of the words, T5's noise density 0.15
T5_SENTINEL = "<extra_id_{}>"  # T5's sentinel tokens, numbered from 0 in order of use


def span_corruptions(text: str, sentinel: str = T5_SENTINEL) -> list[tuple[str, str]]:
    """T5's span-corruption pairs (source, target) of ``text``, made deterministic: its words
    cut into spans of NOISE_SPAN; copy c drops spans c, c + NOISE_PERIOD, ... (never the
    first: T5's sources start with kept text), so every later word is dropped in exactly one
    copy. A dropped span becomes the next sentinel in the source; the target gives each
    sentinel and the words it replaced, and one more sentinel when the text ends with kept
    words, as T5's does ("The <extra_id_0> walks in <extra_id_1> park." ->
    "<extra_id_0> cute dog <extra_id_1> the <extra_id_2>")."""
    words = text.split()
    spans = [words[i : i + NOISE_SPAN] for i in range(0, len(words), NOISE_SPAN)]
    pairs = []
    for copy in range(NOISE_PERIOD):
        dropped = [i for i in range(1, len(spans)) if i % NOISE_PERIOD == copy]
        if not dropped:
            continue
        source: list[str] = []
        target: list[str] = []
        for index, span in enumerate(spans):
            if index in dropped:
                mark = sentinel.format(dropped.index(index))
                source.append(mark)
                target += [mark, *span]
            else:
                source += span
        if dropped[-1] != len(spans) - 1:  # kept words after the last dropped span
            target.append(sentinel.format(len(dropped)))
        pairs.append((" ".join(source), " ".join(target)))
    return pairs


def seq2seq_nll(model: Any, tokenizer: Any, pairs: list[tuple[str, str]]) -> float:
    """Mean negative log-likelihood (nats) per target token (its EOS included) of each
    pair's target given its source, teacher-forced as in training; one batch."""
    import torch

    sources, targets = zip(*pairs, strict=True)
    inputs = tokenizer(list(sources), return_tensors="pt", padding=True).to(model.device)
    encoded = tokenizer(list(targets), return_tensors="pt", padding=True).to(model.device)
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
    logits = model(**inputs, labels=labels).logits.float()
    loss = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum"
    )
    return float(loss) / int((labels != -100).sum())


# The causal LMs' oracle (gpt, llama): plain English is likely to a trained model, and a large
# one knows a plain fact. Factual answers come with capacity: GPT-2's paper (Radford et al.
# 2019, section 3.8) finds its 1.5B model answers 4.1% of Natural Questions, 5.3 times the
# smallest (117M), which does no better than a most-common-answer baseline; so models under
# FACT_MIN_PARAMETERS get "not applicable" for the fact, and larger ones must answer.
FACT_PROMPT = "The capital of France is"
FACT_WORD = "Paris"
FACT_NEW_TOKENS = 8  # room for a lead-in ("the city of Paris"), too few to wander onto it
FACT_MIN_PARAMETERS = 1_000_000_000


def english_nll(model: Any, tokenizer: Any) -> Check:
    """``english_nll``: causal_nll of the passages against vocab_bound (n/a for a tokenizer
    that is not an English one)."""
    reason = not_english(tokenizer)
    if reason:
        return not_applicable("english_nll", reason)
    bound = vocab_bound(model.config.get_text_config().vocab_size)
    return bounded("english_nll", causal_nll(model, tokenizer), bound, "nll/token")


def capital_of_france(model: Any, tokenizer: Any) -> Check:
    """``capital_of_france``: a model of FACT_MIN_PARAMETERS or more continues FACT_PROMPT
    greedily with FACT_WORD within FACT_NEW_TOKENS tokens (the text in the detail)."""
    from hfmatrix.generation import greedy_new_ids

    parameters = model.num_parameters()
    if parameters < FACT_MIN_PARAMETERS:
        why = f"{parameters:,} parameters: under {FACT_MIN_PARAMETERS:,}, too few to know facts"
        return not_applicable("capital_of_france", why)
    inputs = dict(tokenizer(FACT_PROMPT, return_tensors="pt").to(model.device))
    new_ids = greedy_new_ids(model, inputs, FACT_NEW_TOKENS)[0]
    text = tokenizer.decode(new_ids, skip_special_tokens=True)
    return Check("capital_of_france", FACT_WORD in text, f"{FACT_PROMPT!r} -> {text!r}")
