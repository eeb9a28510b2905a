"""How likely a language model finds plain English: the text oracle of the language
families. A trained model's mean negative log-likelihood per token of plain English is far
below ln(vocabulary size), which is where uniform guessing (an untrained model) sits."""

from __future__ import annotations

import math
from typing import Any

from hfmatrix.oracle import Bound

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
    its own; the first token is predicted from the tokenizer's BOS where it has one."""
    import torch

    total, count = 0.0, 0
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        bos = tokenizer.bos_token_id
        if bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        input_ids = torch.tensor([ids], device=model.device)
        logits = model(input_ids=input_ids).logits[0, :-1].float()
        losses = torch.nn.functional.cross_entropy(logits, input_ids[0, 1:], reduction="sum")
        total, count = total + float(losses), count + len(ids) - 1
    return total / count
