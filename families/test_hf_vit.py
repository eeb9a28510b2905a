"""The ViT family: image classifiers (ViTForImageClassification and kin) through
image-classification.

Run as a script (``python families/test_hf_vit.py --model google/vit-base-patch16-224``) or
through pytest (``nox -s vit``); any image classifier of this class runs with no new code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
    pipeline,
)

from hfmatrix.checkpoints import seed_parameters, weights_sha256
from hfmatrix.checks import Check, close, equal, truth
from hfmatrix.cli import family_main
from hfmatrix.expectations import Differs, expect
from hfmatrix.harness import FamilyTest
from hfmatrix.inputs import synthetic_image

TOP_K = 5
ATOL = 1e-4  # optimum-intel's ViT tolerance; transformers' integration tests' logits atol

# The tiny checkpoint: CIFAR-10's class names, transformers' ViTModelTester sizes (patch 8 on
# a 32x32 image: 16 patches and the CLS token), and an image processor that resizes
# synthetic_image() (64x48) to 32x32 and normalises with ImageNet's per-channel statistics.
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TINY_CONFIG = dict(
    image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=37,
    id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)},
)  # fmt: skip
PROCESSOR_SETTINGS = dict(  # as written to preprocessor_config.json (resample 2: bilinear)
    do_resize=True, size={"height": 32, "width": 32}, resample=2,
    do_rescale=True, rescale_factor=1 / 255,
    do_normalize=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
)  # fmt: skip
SEED, INIT_STD = 1234, 0.3  # top-5 scores 0.37 .. 0.09, neighbours at least 0.009 apart

# Golden values of the tiny checkpoint: its weights as loaded and its outputs on
# synthetic_image() (fp32, CPU). transformers 5 loads the torchvision backend of the image
# processor (ViTImageProcessor) when torchvision is installed, as env_specs/vit.toml has it,
# else the PIL one (ViTImageProcessorPil); the record's `loaded.processor` says which. Both
# give these pixel values within 3e-7 (measured with transformers 5.24).
GOLDEN_WEIGHTS_SHA256 = expect(
    "ca20a99c5dcf9cf9a59ce4e618d42af5627a1f001512cc12297c85ee41605e67",
    Differs(
        "transformers<5.9",
        "c4e9eda3c8a6bdecda5a1574de6ab1651892a8bd41c0ac330a14b57f2d7eec1d",
        "the same values under ViT's older module names (vit.encoder.layer.N.attention."
        "attention.query; 5.9 renamed them vit.layers.N.attention.q_proj)",
    ),
)
GOLDEN_PIXEL_STATS = [  # per channel: mean and std of pixel_values
    [0.05801, 1.277724], [0.188222, 1.314823], [0.853508, 0.659305],
]  # fmt: skip
GOLDEN_LOGITS = [  # logits[0]: every class, in LABELS order
    0.252302, -1.896874, -1.205197, -2.690551, -1.89614,
    -0.83276, -0.910293, -2.106886, -1.348637, -1.105317,
]  # fmt: skip
GOLDEN_TOP_LABELS = ["airplane", "dog", "frog", "truck", "bird"]
GOLDEN_TOP_SCORES = [0.367268, 0.124093, 0.114835, 0.094488, 0.085506]


def image_inputs(processor, device: str) -> torch.Tensor:
    """pixel_values of synthetic_image() as the model's processor prepares them."""
    return processor(images=synthetic_image(), return_tensors="pt")["pixel_values"].to(device)


class TestVitModels(FamilyTest):
    """Image classifiers: image-classification pipeline, direct logits and labels,
    pipeline/logits agreement."""

    family = "vit"
    auto_model = AutoModelForImageClassification
    auto_processor = AutoImageProcessor
    openvino_class = "OVModelForImageClassification"

    def build_tiny(self, path: Path) -> None:
        model = ViTForImageClassification(ViTConfig(**TINY_CONFIG))
        seed_parameters(model, SEED, INIT_STD)
        model.save_pretrained(path)
        ViTImageProcessor(**PROCESSOR_SETTINGS).save_pretrained(path)

    def load_model(self, dtype="float32"):
        model, processor, info = super().load_model(dtype)
        self.loaded["processor"] = type(processor).__name__  # which backend loaded
        return model, processor, info

    def model_inputs(self, model, processor) -> dict:
        return {"pixel_values": image_inputs(processor, self.device)}

    def pipeline_parts(self, processor) -> dict:
        return {"image_processor": processor}

    def pipeline_output(self, pipe) -> list[dict]:
        return pipe(synthetic_image(), top_k=TOP_K)

    def pipeline_checks(self, pipe) -> list[Check]:
        predictions = pipe(synthetic_image(), top_k=TOP_K)
        labels = [p["label"] for p in predictions]
        scores = [p["score"] for p in predictions]
        checks = [
            equal("top_k_count", len(predictions), min(TOP_K, pipe.model.config.num_labels)),
            truth("scores_are_probabilities",
                  all(0 <= s <= 1 for s in scores) and sum(scores) <= 1 + ATOL, str(scores)),
            truth("scores_descending", scores == sorted(scores, reverse=True), str(scores)),
        ]  # fmt: skip
        if self.tier == "tiny":
            checks.append(equal("top_k_labels", labels, GOLDEN_TOP_LABELS))
            checks.append(close("top_k_scores", scores, GOLDEN_TOP_SCORES, ATOL))
        return checks

    def from_pretrained_checks(self, model, processor, logits) -> list[Check]:
        config = model.config
        side = config.image_size
        height, width = (side, side) if isinstance(side, int) else tuple(side)
        pixel_values = image_inputs(processor, self.device)
        top = logits[0].softmax(-1).topk(min(TOP_K, config.num_labels))
        top_labels = [config.id2label[i] for i in top.indices.tolist()]
        piped = pipeline(
            "image-classification", model=model, image_processor=processor, device=self.device
        )
        predictions = piped(synthetic_image(), top_k=TOP_K)
        checks = [
            equal("pixel_values_shape", list(pixel_values.shape),
                  [1, config.num_channels, height, width]),
            equal("logits_shape", list(logits.shape), [1, config.num_labels]),
            equal("pipeline_matches_logits_labels", [p["label"] for p in predictions],
                  top_labels),
            close("pipeline_matches_logits_scores", [p["score"] for p in predictions],
                  top.values, ATOL),
        ]  # fmt: skip
        if self.tier == "tiny":
            loaded = json.loads(processor.to_json_string())
            settings = {key: loaded.get(key) for key in PROCESSOR_SETTINGS}
            stats = torch.stack([pixel_values[0].mean((1, 2)), pixel_values[0].std((1, 2))], -1)
            checks += [
                equal("weights_sha256", weights_sha256(model), GOLDEN_WEIGHTS_SHA256),
                equal("image_processor_settings", settings, PROCESSOR_SETTINGS),
                close("pixel_values_stats", stats, GOLDEN_PIXEL_STATS, ATOL),
                close("logits_slice", logits[0], GOLDEN_LOGITS, ATOL),
                equal("predicted_labels", top_labels, GOLDEN_TOP_LABELS),
            ]
        return checks


if __name__ == "__main__":
    raise SystemExit(family_main(TestVitModels))
