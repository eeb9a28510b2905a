"""The ViT family: image classifiers (ViTForImageClassification and kin) through
image-classification.

Run as a script (``python families/test_hf_vit.py --model google/vit-base-patch16-224``) or
through pytest (``nox -s vit``); any image classifier of this class runs with no new code.
"""

from __future__ import annotations

if __name__ == "__main__":  # where torch is missing, the arguments run in the family's environment
    from _script import run_in_family_environment

    run_in_family_environment(__file__)

import json
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    BeitConfig,
    BeitForImageClassification,
    BeitImageProcessor,
    BitImageProcessor,
    ConvNextConfig,
    ConvNextForImageClassification,
    ConvNextImageProcessor,
    ConvNextV2Config,
    ConvNextV2ForImageClassification,
    DeiTConfig,
    DeiTForImageClassification,
    DeiTImageProcessor,
    Dinov2Config,
    Dinov2ForImageClassification,
    SwinConfig,
    SwinForImageClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
    pipeline,
)

from hfmatrix import compat
from hfmatrix.checkpoints import seed_parameters, weights_sha256
from hfmatrix.checks import Check, close, equal, truth
from hfmatrix.cli import family_main
from hfmatrix.harness import FamilyTest
from hfmatrix.inputs import photo, synthetic_image
from hfmatrix.oracle import Bound, bounded, not_applicable

TOP_K = 5
ATOL = 1e-4  # optimum-intel's ViT tolerance; transformers' integration tests' logits atol

# The tiny checkpoints, one per class: CIFAR-10's class names, transformers' model testers'
# sizes on a 32x32 image, and the class's own image processor, which resizes (and, where the
# class's does, crops) synthetic_image() (64x48) to 32x32 and normalises it.
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
HEAD = dict(id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
IMAGENET_NORM = dict(do_normalize=True, image_mean=[0.485, 0.456, 0.406],
                     image_std=[0.229, 0.224, 0.225])  # fmt: skip
RESCALE = dict(do_rescale=True, rescale_factor=1 / 255)
VIT_SIZES = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=32,
                 num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)  # fmt: skip
TINY_CONFIG = dict(VIT_SIZES, **HEAD)
CONVNEXT_SIZES = dict(image_size=32, num_channels=3, hidden_sizes=[8, 16, 24, 32],
                      depths=[1, 1, 1, 1], **HEAD)  # fmt: skip
SQUARE = dict(do_resize=True, size={"height": 32, "width": 32}, resample=2, **RESCALE)
# per tiny model id: its image processor's settings, as written to preprocessor_config.json
# (resample 2: bilinear, 3: bicubic)
PROCESSOR_SETTINGS = {
    "tiny-vit": dict(SQUARE, **IMAGENET_NORM),
    "tiny-deit": dict(do_resize=True, size={"height": 36, "width": 36}, resample=3,
                      do_center_crop=True, crop_size={"height": 32, "width": 32}, **RESCALE,
                      **IMAGENET_NORM),
    "tiny-beit": dict(SQUARE, do_center_crop=False, do_normalize=True, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3),
    "tiny-convnext": dict(do_resize=True, size={"shortest_edge": 32}, crop_pct=0.875,
                          resample=3, **RESCALE, **IMAGENET_NORM),
    "tiny-convnextv2": dict(do_resize=True, size={"shortest_edge": 32}, crop_pct=0.875,
                            resample=3, **RESCALE, **IMAGENET_NORM),
    "tiny-swin": dict(SQUARE, resample=3, **IMAGENET_NORM),
    "tiny-dinov2": dict(do_resize=True, size={"shortest_edge": 36}, resample=3,
                        do_center_crop=True, crop_size={"height": 32, "width": 32}, **RESCALE,
                        **IMAGENET_NORM),
}  # fmt: skip
SEED, INIT_STD = 1234, 0.3  # tiny-vit's top-5 scores 0.37 .. 0.09, at least 0.009 apart


def recipe(
    model_id: str,
    model: Callable,
    processor_class,
    buffers: tuple[str, str] | None = None,
    seed: int = SEED,
) -> Callable[[Path], None]:
    """A tiny checkpoint: ``model()`` with seeded weights (and its buffers named
    ``*buffers[0]``, as the Hub's checkpoints of the class keep them: ``*buffers[1]``), and
    its image processor. ``seed``: another where SEED's top 5 scores are near-ties (within
    50 x ATOL, which a backend's rounding could reorder)."""

    def build(path: Path) -> None:
        built = model()
        seed_parameters(built, seed, INIT_STD)
        built.save_pretrained(path)
        if buffers:
            compat.save_buffers(built, path, *buffers)
        processor_class(**PROCESSOR_SETTINGS[model_id]).save_pretrained(path)

    return build


TINY = {  # tiny model id -> recipe: one per class the family tests
    "tiny-vit": recipe("tiny-vit", lambda: ViTForImageClassification(ViTConfig(**TINY_CONFIG)),
                       ViTImageProcessor),
    "tiny-deit": recipe("tiny-deit",
                        lambda: DeiTForImageClassification(DeiTConfig(**VIT_SIZES, **HEAD)),
                        DeiTImageProcessor, seed=1236),
    "tiny-beit": recipe("tiny-beit", lambda: BeitForImageClassification(BeitConfig(
        **VIT_SIZES, use_relative_position_bias=True, use_mean_pooling=True, **HEAD)),
        BeitImageProcessor),
    "tiny-convnext": recipe(
        "tiny-convnext", lambda: ConvNextForImageClassification(ConvNextConfig(**CONVNEXT_SIZES)),
        ConvNextImageProcessor),
    "tiny-convnextv2": recipe(
        "tiny-convnextv2",
        lambda: ConvNextV2ForImageClassification(ConvNextV2Config(**CONVNEXT_SIZES)),
        ConvNextImageProcessor, seed=1236),
    "tiny-swin": recipe("tiny-swin", lambda: SwinForImageClassification(SwinConfig(
        image_size=32, patch_size=4, num_channels=3, embed_dim=16, depths=[1, 1],
        num_heads=[2, 2], window_size=4, mlp_ratio=2.0, **HEAD)), ViTImageProcessor,
        buffers=("attention.relative_position_bias.relative_position_index",
                 "attention.self.relative_position_index"), seed=1237),
    "tiny-dinov2": recipe("tiny-dinov2", lambda: Dinov2ForImageClassification(Dinov2Config(
        image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, mlp_ratio=1, **HEAD)), BitImageProcessor),
}  # fmt: skip

# Golden values of each tiny checkpoint (families/golden/vit.json): its weights as loaded and
# its outputs on synthetic_image() (fp32, CPU). transformers 5 loads the torchvision backend
# of an image processor when torchvision is installed, as env_specs/vit.toml has it, else
# the PIL one (e.g. ViTImageProcessorPil); the record's `loaded.processor` says which. Both
# give tiny-vit's pixel values within 3e-7 (measured with transformers 5.24).

# The class oracle: an ImageNet-1k classifier names what real photographs show. The classes,
# by their index in ImageNet-1k's standard order (torchvision's ImageNet categories, the
# id2label of google/vit-base-patch16-224 and facebook/deit-base-patch16-224) -> a fragment
# of their label, which the model's own id2label must hold for the oracle to apply.
IMAGENET_LABELS: dict[int, str] = {
    281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat",
    504: "coffee mug", 967: "espresso", 968: "cup",
}  # fmt: skip
IMAGENET_CLASSES = 1000
# inputs.photo() name -> (what it shows, the classes that name it)
EXPECTED_CLASSES: dict[str, tuple[str, tuple[int, ...]]] = {
    "chelsea": ("a cat", (281, 282, 283, 284, 285)),  # Chelsea, a tabby
    "coffee": ("a cup of espresso", (504, 967, 968)),  # an espresso cup on its saucer
}
# The best rank of a class that names the photo must be within the top 5 (rank < 6). Trained:
# DeiT-B's and ViT-B/16's top-5 accuracy on ImageNet-1k's validation set is about 95%, and
# these are clear, centred photographs of one object. Untrained: a ranking unrelated to the
# image puts one of 3 to 5 given classes in its top 5 with a chance of 1.5% to 2.5%; its
# expected best rank is about 1000 / (classes + 1), i.e. 170 to 250.
RANK_BOUND = Bound(
    TOP_K + 1,
    "the top 5 names the photo: trained ImageNet-1k ViT/DeiT-B top-5 accuracy ~95%; an "
    "unrelated ranking does so with 1.5-2.5% chance",
)


def image_inputs(processor, device: str) -> torch.Tensor:
    """pixel_values of synthetic_image() as the model's processor prepares them."""
    return processor(images=synthetic_image(), return_tensors="pt")["pixel_values"].to(device)


class TestVitModels(FamilyTest):
    """Image classifiers: image-classification pipeline, direct logits and labels,
    pipeline/logits agreement; an ImageNet-1k classifier names real photographs."""

    family = "vit"
    auto_model = AutoModelForImageClassification
    auto_processor = AutoImageProcessor
    openvino_class = "OVModelForImageClassification"
    tiny_recipes = TINY

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
            checks.append(self.golden_check("top_k_labels", labels))
            checks.append(self.golden_check("top_k_scores", scores, ATOL))
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
            recipe = PROCESSOR_SETTINGS[self.model_id]
            settings = {key: loaded.get(key) for key in recipe}
            stats = torch.stack([pixel_values[0].mean((1, 2)), pixel_values[0].std((1, 2))], -1)
            checks += [
                self.golden_check("weights_sha256", weights_sha256(model)),
                equal("image_processor_settings", settings, recipe),
                self.golden_check("pixel_values_stats", stats, ATOL),  # per channel: mean, std
                self.golden_check("logits_slice", logits[0], ATOL),  # every class, LABELS order
                self.golden_check("predicted_labels", top_labels),
            ]
        return checks

    def oracle_checks(self, model, processor) -> list[Check]:
        """Each photograph's best-ranked class among those that name it, in the top 5."""
        mismatch = imagenet_mismatch(model.config.id2label)
        if mismatch is not None:
            return [not_applicable(f"{name}_in_top_5", mismatch) for name in EXPECTED_CLASSES]
        images = [photo(name) for name in EXPECTED_CLASSES]
        pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
        probabilities = model(pixel_values=pixel_values.to(self.device)).logits.softmax(-1)
        checks = []
        photos = zip(EXPECTED_CLASSES.items(), probabilities.cpu(), strict=True)
        for (name, (shows, classes)), row in photos:
            what = f"best rank of a class naming {shows}"
            check = bounded(f"{name}_in_top_5", best_rank(row, classes), RANK_BOUND, what)
            check.detail += f"; top 5: {top_labels(row, model.config.id2label)}"
            checks.append(check)
        return checks


def imagenet_mismatch(id2label: dict[int, str]) -> str | None:
    """Why a label set is not ImageNet-1k's (the count, or a label of IMAGENET_LABELS that
    is not where ImageNet-1k has it), or None."""
    reason = "labels are not the ImageNet-1k set: "
    if len(id2label) != IMAGENET_CLASSES:
        first = ", ".join(str(id2label[i]) for i in sorted(id2label)[:5])
        more = ", ..." if len(id2label) > 5 else ""
        return f"{reason}{len(id2label)} labels ({first}{more})"
    for index, fragment in IMAGENET_LABELS.items():
        label = str(id2label.get(index, ""))
        if fragment.lower() not in label.lower():
            return f"{reason}1000 labels, but {index} is {label!r}, not {fragment!r}"
    return None


def best_rank(probabilities: torch.Tensor, classes: tuple[int, ...]) -> int:
    """The rank (1: the most probable) of the best-ranked of ``classes``."""
    best = probabilities[list(classes)].max()
    return int((probabilities > best).sum()) + 1


def top_labels(probabilities: torch.Tensor, id2label: dict[int, str]) -> str:
    """The top 5 labels with their probabilities, as the record's detail shows them."""
    top = probabilities.topk(min(TOP_K, len(probabilities)))
    pairs = zip(top.indices.tolist(), top.values.tolist(), strict=True)
    return ", ".join(f"{id2label[index]} {p:.3f}" for index, p in pairs)


if __name__ == "__main__":
    raise SystemExit(family_main(TestVitModels))
