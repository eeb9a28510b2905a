"""What every family's tests check, on every family: the tiny checkpoint passes with its
numbers, rebuilds byte for byte and breaks when one weight changes; the default hub model is
skipped offline; a hub id served from the HF cache gets only the hub tier's checks.

What differs between families is in the tables below; what only one family checks is in its
tests/test_<family>_family.py."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from families_helpers import (
    FAMILIES,
    FIRST,
    REVISION,
    ROOT,
    check_names,
    edit_json,
    fails,
    perturb_weight,
    plant_hf_snapshot,
    run,
    skipped_quickly,
)
from faults import project_copy

from hfmatrix import checkpoints, commands, freeze, sources
from hfmatrix.project import Project

pytestmark = pytest.mark.usefixtures("isolated")
each_family = pytest.mark.parametrize("family", FAMILIES, indirect=True)


def checks(*groups: str) -> frozenset[str]:
    """Check names ("test.check") from groups such as "pipeline: check other_check"."""
    return frozenset(
        f"{test.strip()}.{check}"
        for group in groups
        for test, names in [group.split(":")]
        for check in names.split()
    )


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


class AtLeast(frozenset):
    """Names a record must have, among others (a plain frozenset: these and no others)."""


def assert_names(actual: set[str], expected: frozenset[str], optional=frozenset()) -> None:
    if isinstance(expected, AtLeast):
        assert expected <= actual
    else:
        assert actual - optional == expected


@dataclass(frozen=True)
class Expected:
    """One family's expectations."""

    model_class: str
    task: str | None  # None: it depends on the transformers version (see the family's tests)
    atol: float  # of the golden comparisons (save_load_round_trip: 1e-5)
    files: frozenset[str]  # of the tiny checkpoint
    comparisons: frozenset[str]  # the tiny run's numeric comparisons
    tiny_checks: frozenset[str]
    hub_checks: frozenset[str]  # of a hub id served from the HF cache with the tiny files
    hub_failed: frozenset[str] = frozenset()  # hub-tier checks random tiny weights fail
    optional_checks: frozenset[str] = frozenset()  # run by some transformers versions only
    hub_id: str | None = None  # served from the HF cache in place of the default model
    oracle_na: str | None = None  # why the class oracle cannot apply to the tiny files
    default_skip: str = "HF_HUB_OFFLINE"  # in the reason the default model is skipped for
    loaded: frozenset[str] = words("class dtype revision")  # the keys of record["loaded"]


GPT_HUB = checks(
    "pipeline: prompt_kept pipeline_ids_match_direct_greedy text_is_greedy_ids_decoded",
    "from_pretrained: weights_complete tokenizer_complete finite logits_shape new_token_count"
    " first_greedy_token_is_argmax greedy_ids_are_argmax_without_cache"
    " pipeline_matches_greedy_text decode_round_trip bytes_decode_round_trip"
    " save_load_round_trip",
)
GPT_GOLDEN = checks(
    "pipeline: generated_ids generated_text",
    "from_pretrained: weights_sha256 vocab_sha256 input_ids bytes_input_ids logits_slice"
    " logits_stats greedy_ids",
)
T5_HUB = checks(
    "pipeline: starts_with_decoder_start pipeline_ids_match_direct_greedy",
    "from_pretrained: weights_complete tokenizer_complete finite logits_shape"
    " prompt_ends_with_eos new_token_count greedy_ids_are_argmax_without_cache"
    " decode_round_trip save_load_round_trip",
)
T5_GOLDEN = checks(
    "pipeline: generated_ids generated_text",
    "from_pretrained: weights_sha256 vocab_sha256 input_ids sentinel_input_ids"
    " normalised_input_ids logits_slice logits_stats greedy_ids",
)
LLAMA_HUB = checks(
    "pipeline: pipeline_keeps_prompt_ids new_token_count text_is_decoding_of_ids",
    "from_pretrained: weights_complete tokenizer_complete finite new_token_count"
    " first_token_is_argmax pipeline_matches_greedy_ids causal_prefix_logits"
    " cached_greedy_is_argmax save_load_round_trip",
)
LLAMA_GOLDEN = checks(
    "pipeline: generated_ids generated_text generated_text_is_golden_decoding",
    "from_pretrained: grouped_query_attention weights_sha256 vocab_sha256 input_ids"
    " byte_fallback_ids byte_fallback_round_trip logits_slice logits_stats greedy_new_ids",
)
LLAVA_HUB = checks(
    "pipeline: image_tokens_match_features image_tokens_match_vision_config"
    " pipeline_text_is_decoded_greedy_ids",
    "from_pretrained: weights_complete tokenizer_complete finite first_greedy_id_is_logits_argmax"
    " image_reaches_logits save_load_round_trip",
)
LLAVA_GOLDEN = checks(
    "pipeline: generated_text",
    "from_pretrained: weights_sha256 vocab_sha256 input_ids pixel_values_stats logits_slice"
    " greedy_new_ids",
)
GENERATION_COMPARISONS = words(
    "logits_slice logits_stats greedy_ids_are_argmax_without_cache save_load_round_trip"
)

EXPECTED = {
    "bert": Expected(
        model_class="BertForMaskedLM",
        task="fill-mask",
        atol=1e-4,
        files=AtLeast({"model.safetensors"}),
        comparisons=AtLeast(words("top_k_scores logits_slice logits_stats save_load_round_trip")),
        tiny_checks=AtLeast(
            checks(
                "pipeline: top_k_tokens top_k_scores",
                "from_pretrained: weights_sha256 vocab_sha256 input_ids normalised_input_ids"
                " logits_slice logits_stats",
            )
        ),
        hub_checks=checks(
            "pipeline: scores_are_probabilities scores_descending",
            "from_pretrained: weights_complete tokenizer_complete finite"
            " pipeline_matches_logits_tokens pipeline_matches_logits_scores save_load_round_trip",
        ),
    ),
    "gpt": Expected(
        model_class="GPT2LMHeadModel",
        task="text-generation",
        atol=1e-4,
        files=AtLeast(words("model.safetensors tokenizer.json tokenizer_config.json")),
        comparisons=GENERATION_COMPARISONS,
        tiny_checks=GPT_HUB | GPT_GOLDEN,
        hub_checks=GPT_HUB,
    ),
    "t5": Expected(
        model_class="T5ForConditionalGeneration",
        task=None,
        atol=1e-4,
        files=AtLeast(words("model.safetensors tokenizer.json tokenizer_config.json")),
        comparisons=GENERATION_COMPARISONS,
        tiny_checks=T5_HUB | T5_GOLDEN,
        hub_checks=T5_HUB,
        optional_checks=checks("pipeline: text_is_greedy_ids_decoded"),  # text2text-generation
    ),
    "llama": Expected(
        model_class="LlamaForCausalLM",
        task="text-generation",
        atol=1e-4,
        files=AtLeast(words("model.safetensors tokenizer.json config.json")),
        comparisons=words(
            "logits_slice logits_stats causal_prefix_logits cached_greedy_is_argmax"
            " save_load_round_trip"
        ),
        tiny_checks=LLAMA_HUB | LLAMA_GOLDEN,
        hub_checks=LLAMA_HUB,
        hub_id="meta-llama/Llama-2-13b-hf",
        default_skip="remote code",  # Llama-2-7b-hf: requires_remote_code in overrides.json
    ),
    "vit": Expected(
        model_class="ViTForImageClassification",
        task="image-classification",
        atol=1e-4,
        files=AtLeast(words("model.safetensors config.json preprocessor_config.json")),
        comparisons=words(
            "top_k_scores pipeline_matches_logits_scores pixel_values_stats logits_slice"
            " save_load_round_trip"
        ),
        tiny_checks=AtLeast(
            checks(
                "pipeline: top_k_labels",
                "from_pretrained: weights_sha256 image_processor_settings predicted_labels"
                " pipeline_matches_logits_labels",
            )
        ),
        hub_checks=checks(
            "pipeline: top_k_count scores_are_probabilities scores_descending",
            "from_pretrained: weights_complete finite pixel_values_shape logits_shape"
            " pipeline_matches_logits_labels pipeline_matches_logits_scores save_load_round_trip",
        ),
        loaded=words("class dtype revision processor"),
        oracle_na="not the ImageNet-1k set",  # the tiny head has CIFAR-10's labels
    ),
    "whisper": Expected(
        model_class="WhisperForConditionalGeneration",
        task="automatic-speech-recognition",
        atol=1e-3,
        files=AtLeast(words("model.safetensors tokenizer.json processor_config.json")),
        comparisons=words(
            "features_stats features_slice logits_slice logits_stats save_load_round_trip"
        ),
        tiny_checks=AtLeast(  # the pipeline's, exactly and in order: test_whisper_family.py
            checks(
                "from_pretrained: features_shape first_greedy_token_is_logits_argmax"
                " weights_sha256 vocab_sha256 feature_extractor_settings decoder_prompt_ids"
                " text_ids greedy_ids greedy_transcript save_load_round_trip"
            )
        ),
        hub_checks=checks(
            "pipeline: pipeline_decodes_as_whisper pipeline_text_matches_generate",
            "from_pretrained: weights_complete tokenizer_complete finite features_shape"
            " logits_shape greedy_length first_greedy_token_is_logits_argmax save_load_round_trip",
        ),
    ),
    "sam": Expected(
        model_class="SamModel",
        task="mask-generation",
        atol=1e-4,
        files=words("config.json model.safetensors preprocessor_config.json"),
        comparisons=AtLeast(
            words(
                "mask_scores pipeline_matches_model_scores pixel_values_stats pixel_values_slice"
                " iou_scores pred_masks_slice pred_masks_stats save_load_round_trip"
            )
        ),
        tiny_checks=AtLeast(
            checks(
                "pipeline: mask_pixels mask_shapes_match_image",
                "from_pretrained: mask_pixels weights_sha256 image_processor_settings"
                " input_points pipeline_matches_model_masks",
            )
        ),
        hub_checks=checks(
            "pipeline: found_masks mask_shapes_match_image scores_descending",
            "from_pretrained: weights_complete finite pred_masks_shape iou_scores_shape"
            " masks_shape pipeline_matches_model_scores pipeline_matches_model_masks"
            " iou_scores_in_range point_in_best_mask save_load_round_trip",
        ),
        # random weights fail exactly the checks only a trained SAM passes
        hub_failed=checks("from_pretrained: iou_scores_in_range point_in_best_mask"),
    ),
    "llava": Expected(
        model_class="LlavaForConditionalGeneration",
        task="image-text-to-text",
        atol=1e-4,
        files=AtLeast(words("model.safetensors tokenizer.json processor_config.json")),
        comparisons=words("pixel_values_stats logits_slice save_load_round_trip"),
        tiny_checks=LLAVA_HUB | LLAVA_GOLDEN,
        hub_checks=LLAVA_HUB,
    ),
}


def name(family) -> str:
    return family.__name__.removeprefix("test_hf_")


def default_model(family) -> str:
    return Project(ROOT).family_spec(name(family)).default_model


@each_family
def test_tiny_checkpoint_passes_with_numbers(family, tiny_record, built_tiny):
    expected = EXPECTED[name(family)]
    record = tiny_record(family)
    assert record["status"] == "passed", record["reason"]
    assert record["tier"] == "tiny" and record["model_id"] == f"tiny-{name(family)}"
    assert record["source"]["location"] == str(built_tiny(family))
    assert {t: r["status"] for t, r in record["tests"].items()} == {
        "pipeline": "passed",
        "from_pretrained": "passed",
    }
    if expected.task is not None:
        assert record["pipeline_task"] == expected.task
    assert record["loaded"]["class"] == expected.model_class
    assert_names(check_names(record), expected.tiny_checks, expected.optional_checks)
    comparisons = record["numerics"]["comparisons"]
    assert_names(set(comparisons), expected.comparisons)
    assert all(c["max_abs_diff"] <= c["atol"] for c in comparisons.values())
    assert comparisons["save_load_round_trip"]["atol"] == 1e-5
    golden = [c for key, c in comparisons.items() if key != "save_load_round_trip"]
    assert all(c["atol"] == family.ATOL == expected.atol for c in golden)
    assert record["numerics"]["max_abs_diff"] <= record["numerics"]["atol"] == expected.atol
    assert record["numerics"]["reference"] == "golden values"
    assert len(record["checkpoint"]["sha256"]) == 64
    assert_names(set(record["checkpoint"]["files"]), expected.files)
    assert record["environment"]["torch"] and record["environment"]["transformers"]


@each_family
def test_committed_tiny_files_are_the_recipe_on_the_reference_stack(family, built_tiny):
    """tiny/<family>/ holds what build_tiny writes on this (the default) stack: the same
    weights as loaded and the same vocabulary or processor settings."""
    assert freeze.differences(Project(ROOT), name(family), f"tiny-{name(family)}") == {}
    assert_names(
        set(checkpoints.describe(built_tiny(family))["files"]), EXPECTED[name(family)].files
    )


def test_freeze_check_names_a_changed_file_and_freeze_restores_it(tmp_path, monkeypatch, capsys):
    project = project_copy(tmp_path / "project")
    perturb_weight(project / "tiny" / "bert", "bert.embeddings.word_embeddings.weight", FIRST)
    monkeypatch.chdir(project)
    assert commands.main(["freeze", "--check", "--model", "tiny-bert"]) == 1
    assert "tiny-bert: weights_sha256 recipe" in capsys.readouterr().out
    assert commands.main(["freeze", "--model", "tiny-bert"]) == 0
    assert commands.main(["freeze", "--check", "--model", "tiny-bert"]) == 0
    assert "the frozen files are the recipe" in capsys.readouterr().out
    assert commands.main(["freeze", "--family", "nope"]) == 2
    assert commands.main(["freeze", "--model", "bert-base-uncased"]) == 2


@each_family
def test_default_hub_model_is_skipped_offline_quickly(family):
    reason = skipped_quickly(family, default_model(family))
    assert EXPECTED[name(family)].default_skip in reason


@pytest.mark.parametrize(
    ("family", "model_id"),
    [("bert", "distilbert-base-uncased"), ("gpt", "distilgpt2")],
    indirect=["family"],
)
def test_hub_model_with_unreachable_hub_is_skipped_quickly(family, model_id, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    sources._probe.cache_clear()
    try:
        reason = skipped_quickly(family, model_id)
    finally:
        sources._probe.cache_clear()
    assert "unreachable" in reason and "127.0.0.1:9" in reason


@each_family
def test_hub_id_served_from_the_hf_cache_gets_only_hub_tier_checks(family, hub_record):
    """A cached snapshot serves a hub id offline (here holding the tiny files): the hub tier's
    self-consistency checks run, no golden values; they hold for any working model of the
    class but for the few (hub_failed) that only trained weights pass."""
    expected = EXPECTED[name(family)]
    record = hub_record(family, expected.hub_id or default_model(family))
    assert record["tier"] == "hub" and record["source"]["origin"] == "HF cache"
    assert record["source"]["revision"] == REVISION
    oracle = record["tests"]["oracle"]
    if expected.oracle_na:  # recorded as not applicable, with the reason, on every check
        reasons = [check.get("not_applicable") or "" for check in oracle["checks"]]
        assert reasons and all(expected.oracle_na in reason for reason in reasons)
    else:  # untrained weights fail the class oracle (tests/test_oracles.py: every bound)
        assert record["status"] == "failed" and oracle["status"] == "failed"
    assert set(record["tests"]) <= {"pipeline", "from_pretrained", "oracle", "published"}
    assert loading_checks(record, passed=False) == expected.hub_failed
    # the hub tier skips the save/load round trip: a second full copy of a 7B+ model
    hub_checks = expected.hub_checks - checks("from_pretrained: save_load_round_trip")
    assert_names(loading_checks(record), hub_checks, expected.optional_checks)
    assert set(record["loaded"]) == expected.loaded
    assert record["loaded"]["class"] == expected.model_class
    assert record["loaded"]["dtype"] == "torch.float32"
    assert record["loaded"]["revision"] == REVISION
    assert record["numerics"]["reference"] == "self-consistency"


def loading_checks(record: dict, passed: bool | None = None) -> set[str]:
    """The names of the record's pipeline and from_pretrained checks (not the oracle's)."""
    names = check_names(record, passed)
    return {n for n in names if n.split(".")[0] in ("pipeline", "from_pretrained")}


LOGITS = checks("from_pretrained: logits_slice logits_stats")
SLICE = checks("from_pretrained: logits_slice")
# family, parameter, index into it (a function of the family module: a row found by token),
# and the golden checks that fail besides weights_sha256; with none, the parameter does not
# reach the outputs and weights_sha256 fails alone
WEIGHT_CHANGES = {
    "bert": [
        ("bert.encoder.layer.1.output.dense.weight", 0, LOGITS),
        ("bert.embeddings.LayerNorm.weight", 0, LOGITS),
        ("cls.predictions.bias", 0, LOGITS),
        # the row of a word absent from the prompt
        ("bert.embeddings.word_embeddings.weight", lambda m: (m.VOCAB.index("country"), 0), ()),
    ],
    "gpt": [
        ("transformer.h.0.attn.c_attn.weight", 0, LOGITS),
        ("transformer.ln_f.weight", 0, LOGITS),
        ("transformer.wpe.weight", (-1, 0), ()),  # the last position: beyond prompt + new tokens
    ],
    "t5": [
        ("decoder.block.1.layer.2.DenseReluDense.wo.weight", 0, LOGITS),
        ("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 0, LOGITS),
        # the row of "Katze": in no input, only in the tied LM head's output
        ("shared.weight", lambda m: ([piece for piece, _ in m.PIECES].index("▁Katze"), 0), ()),
    ],
    "llama": [
        ("model.layers.1.mlp.down_proj.weight", 0, LOGITS),
        ("model.layers.0.self_attn.k_proj.weight", 0, LOGITS),  # shared by two query heads
        ("model.norm.weight", 0, LOGITS),
        # in neither the prompt nor the continuation (test_llama_family.py checks)
        ("model.embed_tokens.weight", lambda m: (m.VOCAB["▁castle"], 0), ()),
    ],
    "vit": [
        (parameter, 0, checks("from_pretrained: logits_slice", "pipeline: top_k_scores"))
        for parameter in (
            "vit.embeddings.patch_embeddings.projection.weight",
            "vit.encoder.layer.1.output.dense.weight",
            "classifier.bias",
        )
    ],
    "whisper": [
        ("model.encoder.conv1.weight", FIRST, SLICE),  # the audio, through cross-attention
        ("model.decoder.layer_norm.weight", FIRST, SLICE),
        # the row of "Ġhz": neither fed nor chosen
        ("model.decoder.embed_tokens.weight", lambda m: (m.byte_level_bpe()[0]["Ġhz"], 0), ()),
    ],
    "sam": [
        # the image encoder's last layer: every output changes
        (
            "vision_encoder.layers.1.mlp.lin2.weight",
            (0, 0),
            checks("from_pretrained: iou_scores pred_masks_slice"),
        ),
        # the IoU of the first multimask output: the scores change, the masks do not
        (
            "mask_decoder.iou_prediction_head.proj_out.bias",
            1,
            checks("from_pretrained: iou_scores"),
        ),
        # the single-mask output's hypernetwork, unused with multimask_output
        ("mask_decoder.output_hypernetworks_mlps.0.proj_out.bias", 0, ()),
    ],
    "llava": [
        ("language_model.model.layers.1.mlp.down_proj.weight", FIRST, SLICE),  # the decoder
        (
            "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight",
            FIRST,
            SLICE,
        ),  # via the image
        (
            "vision_tower.vision_model.post_layernorm.weight",
            FIRST,
            (),
        ),  # LLaVA never uses the pooled output
    ],
}


@pytest.mark.parametrize(
    ("family", "parameter", "index", "outputs"),
    [
        pytest.param(family, *change, id=f"{family}-{change[0]}")
        for family, changes in WEIGHT_CHANGES.items()
        for change in changes
    ],
    indirect=["family"],
)
def test_changing_one_weight_fails(family, tiny_copy, parameter, index, outputs):
    perturb_weight(tiny_copy, parameter, index(family) if callable(index) else index)
    failed = fails(family, "from_pretrained.weights_sha256", *outputs)
    if not outputs:
        assert failed == {"from_pretrained.weights_sha256"}
    assert not failed & EXPECTED[name(family)].hub_checks  # only golden checks fail


@each_family
def test_a_change_in_attention_code_fails_the_golden_values(family, tiny, monkeypatch):
    """Model code, not weights: every attention output 1% larger (through torch's SDPA, which
    each family's modelling code calls) must fail golden numeric checks, not the hashes."""
    import torch

    original = torch.nn.functional.scaled_dot_product_attention
    calls = []

    def louder(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs) * 1.01

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", louder)
    failed = fails(family)
    assert calls, "the family's model code did not reach scaled_dot_product_attention"
    assert failed & {"from_pretrained.logits_slice", "from_pretrained.pred_masks_slice"}
    assert not failed & {"from_pretrained.weights_sha256", "from_pretrained.vocab_sha256"}
    assert not failed & EXPECTED[name(family)].hub_checks  # only golden checks fail


@pytest.mark.parametrize("family", ["gpt", "t5", "llama", "llava"], indirect=True)
def test_hub_checks_hold_for_a_generation_config_with_penalties(family, tiny_copy, isolated,
                                                                monkeypatch):  # fmt: skip
    """Fine-tuned checkpoints often ship a repetition penalty or n-gram ban: the greedy checks
    switch them off, so a working model still passes every hub-tier check."""
    from huggingface_hub import constants

    def penalise(config: dict) -> None:
        config.update(repetition_penalty=1.3, no_repeat_ngram_size=2)

    edit_json(tiny_copy / "generation_config.json", penalise)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(isolated / "hf" / "hub"))
    plant_hf_snapshot(isolated / "hf" / "hub", "someone/fine-tuned", tiny_copy)
    record = run(family, "someone/fine-tuned")
    assert record["tier"] == "hub"
    assert not loading_checks(record, passed=False), record["reason"]
    assert record["tests"]["oracle"]["status"] == "failed"  # untrained: the oracle's business
