"""The SAM family: Segment Anything (SamModel) through mask-generation and a point prompt.

Run as a script (``python families/test_hf_sam.py --model facebook/sam-vit-base``) or through
pytest (``nox -s sam``); any SamModel checkpoint runs with no new code.
"""

from __future__ import annotations

if __name__ == "__main__":  # where torch is missing, the arguments run in the family's environment
    from _script import run_in_family_environment

    run_in_family_environment(__file__)

import json
from typing import Any

import torch
from transformers import (
    AutoModelForMaskGeneration,
    AutoProcessor,
    SamConfig,
    SamImageProcessor,
    SamModel,
    pipeline,
)

from hfmatrix import compat
from hfmatrix.checkpoints import tiny_recipe, weights_sha256
from hfmatrix.checks import Check, close, equal, truth
from hfmatrix.cli import family_main
from hfmatrix.harness import FamilyTest
from hfmatrix.inputs import photo, synthetic_image
from hfmatrix.oracle import Bound, bounded

# synthetic_image() is 64 x 48 with a dark (blue 40) square at x in [16, 32), y in [12, 24).
WIDTH, HEIGHT = synthetic_image().size
POINT = [24, 18]  # (x, y): the square's centre, also a point of the pipeline's 4 x 4 grid below
GRID = dict(points_per_crop=4, points_per_batch=8)  # 16 grid points in two batches
THRESHOLDS = {
    "hub": dict(pred_iou_thresh=0.88, stability_score_thresh=0.95),  # the pipeline's defaults
    # random weights predict IoU far outside [0, 1] and unstable masks: thresholds for them
    "tiny": dict(pred_iou_thresh=1.0, stability_score_thresh=0.05),
}
NO_FILTERS = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0, crops_nms_thresh=1.0)
ATOL = 1e-4  # optimum-intel's SAM tolerance
IOU_RANGE = (-0.1, 1.1)  # a trained IoU head regresses IoUs in [0, 1]; a small margin
MAX_DIFFERING_PIXELS = 0.001  # share of mask pixels the pipeline may binarise differently

# transformers' SamModelTester sizes, at 128 x 128 pixels (an 8 x 8 embedding, 32 x 32 masks)
TINY_CONFIG = dict(
    vision_config=dict(
        image_size=128, patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        mlp_dim=64, output_channels=32, window_size=4, global_attn_indexes=[1], num_pos_feats=16,
    ),
    prompt_encoder_config=dict(
        hidden_size=32, image_size=128, patch_size=16, mask_input_channels=4,
    ),
    mask_decoder_config=dict(
        hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=4,
        iou_head_hidden_dim=32,
    ),
)  # fmt: skip
TINY_IMAGE_PROCESSOR = dict(  # resize the longest edge to the model's 128 and pad to 128 x 128
    size={"longest_edge": 128}, pad_size={"height": 128, "width": 128},
    mask_size={"longest_edge": 32}, mask_pad_size={"height": 32, "width": 32},
)  # fmt: skip
SEED, INIT_STD = 0, 0.4

# What the tiny checkpoint's image processor must keep (its settings' golden value), and the
# input sizes that post-processing takes back to the image's own.
IMAGE_PROCESSOR_SETTINGS = (
    *TINY_IMAGE_PROCESSOR, "do_resize", "do_rescale", "do_normalize", "do_pad", "image_mean",
    "image_std", "rescale_factor", "resample",
)  # fmt: skip
SIZES = ("original_sizes", "reshaped_input_sizes")

# Golden values of the tiny checkpoint (families/golden/sam.json): its weights and image
# processor as loaded (the torchvision backend's class, v5's default), and its outputs on
# synthetic_image() with POINT (fp32, CPU). The pipeline's masks under the tiny thresholds
# (two pass) are stored as pipeline_mask_pixels beside the direct model's mask_pixels.

# The class oracle: a point prompt on the espresso of inputs.photo("coffee") (600 x 400: a cup
# of espresso on its saucer, seen from above at an angle). A single point is ambiguous, and
# SAM answers it with whole, part and subpart masks; the point lies on four nested objects,
# each a right answer: the crema (the espresso's lit surface, short of the dark crescent
# along its far edge), the espresso, the inside of the cup (within its rim) and the cup (rim,
# body, handle). Each is a union of polygons in the photo's pixel coordinates (x right, y
# down), within about 3 px: the crema, the espresso and the rim's inner and outer edges
# traced along their colour edges, the body, handle and foot by eye. The saucer with the cup
# is not among them: it fills 45% of the frame, so a mask of everything would come close.
ORACLE_PHOTO = "coffee"
ORACLE_POINT = [345, 158]  # on the crema, 20 px in from its right edge
CREMA = [
    (367, 157), (352, 177), (331, 186), (315, 191), (302, 193), (291, 193), (280, 191),
    (268, 189), (253, 184), (235, 175), (214, 157), (228, 136), (250, 127), (266, 123),
    (279, 121), (291, 121), (301, 126), (313, 126), (328, 129), (347, 138),
]  # fmt: skip
ESPRESSO = [
    (366, 142), (366, 167), (343, 182), (321, 189), (303, 192), (287, 192), (272, 189),
    (256, 185), (239, 177), (220, 164), (203, 142), (214, 118), (233, 102), (252, 94),
    (271, 91), (287, 90), (303, 92), (320, 97), (336, 106), (353, 120),
]  # fmt: skip
INSIDE = [  # the rim's inner edge; at the front, the espresso meets it
    (389, 113), (384, 144), (367, 169), (342, 185), (316, 193), (290, 194), (265, 190),
    (241, 181), (218, 166), (200, 143), (192, 113), (197, 83), (213, 57), (238, 41),
    (264, 33), (290, 31), (315, 36), (339, 47), (360, 62), (379, 84),
]  # fmt: skip
RIM = [  # the rim's outer edge
    (407, 112), (400, 148), (380, 177), (351, 195), (320, 204), (290, 206), (261, 202),
    (232, 191), (205, 174), (183, 147), (173, 112), (180, 76), (202, 47), (230, 29),
    (260, 19), (290, 17), (320, 21), (348, 32), (375, 50), (397, 77),
]  # fmt: skip
BODY = [  # below the rim's widest line: the cup's sides, handle and foot
    (173, 113), (174, 150), (180, 180), (190, 205), (200, 225), (197, 255), (195, 280),
    (200, 298), (215, 306), (235, 303), (250, 293), (260, 283), (280, 287), (300, 288),
    (320, 286), (338, 278), (352, 262), (370, 240), (388, 215), (400, 185), (406, 150),
    (407, 113),
]  # fmt: skip
OBJECTS = {
    "the crema": [CREMA],
    "the espresso": [ESPRESSO],
    "the inside of the cup": [INSIDE],
    "the cup": [RIM, BODY],
}
# The mask SAM scores best must match one of the objects at IoU >= 0.6. Trained: SAM's masks
# of clear objects follow their outlines within a few pixels: about 0.9 against these
# polygons, which match the colour edges at 0.95 to 0.99 (the cup without its handle scores
# 0.91). Untrained: random masks, or a blob around the point (what a decoder makes of an
# image it cannot see): the point lies off every object's centre, so no ellipse centred on
# it, of any size, reaches 0.59 against any of them, and a mask of the whole photo reaches
# 0.22 (tests/test_sam_family.py); the tiny and its shuffled and renormalised copies score
# 0.005 to 0.22.
MASK_IOU = Bound(
    0.6,
    "SAM's mask of an object ~0.9 against its traced outline; no blob centred on the point "
    "reaches 0.59, a mask of the whole photo 0.22",
    below=False,
)


TINY = {  # tiny model id -> recipe: a seeded SamModel and its image processor alone, as
    # preprocessor_config.json (the Hub checkpoints' layout)
    "tiny-sam": tiny_recipe(SamModel, SamConfig(**TINY_CONFIG),
                            lambda: SamImageProcessor(**TINY_IMAGE_PROCESSOR), SEED, INIT_STD),
}  # fmt: skip


class TestSamModels(FamilyTest):
    """Segment Anything: automatic mask generation, point-prompted masks, and their agreement;
    a point on a real photograph's object gets a mask of that object."""

    family = "sam"
    auto_model = AutoModelForMaskGeneration
    auto_processor = AutoProcessor
    openvino_class = "OVSamModel"
    tiny_recipes = TINY
    last: tuple[Any, Any] | None = None  # (inputs, outputs) of the latest forward pass

    def model_inputs(self, model, processor) -> dict:
        inputs = processor(images=synthetic_image(), input_points=[[POINT]], return_tensors="pt")
        self.processed = inputs.to(self.device)  # with the sizes that post-processing needs
        return {key: self.processed[key] for key in ("pixel_values", "input_points")}

    def forward(self, model, processor) -> torch.Tensor:
        outputs = model(**self.model_inputs(model, processor))
        self.last = self.processed, outputs  # from_pretrained_checks reads the IoU scores here
        return outputs.pred_masks

    def reference_outputs(self, model, processor) -> dict:
        self.forward(model, processor)
        _, outputs = self.last
        return {"pred_masks": outputs.pred_masks, "iou_scores": outputs.iou_scores}

    def pipeline_parts(self, processor) -> dict:
        return {"image_processor": processor.image_processor}

    def pipeline_output(self, pipe) -> dict:
        thresholds = THRESHOLDS["tiny" if self.tier == "tiny" else "hub"]
        result = pipe(synthetic_image(), **GRID, **thresholds)
        return {"masks": [compat.as_tensor(m) for m in result["masks"]], "scores": result["scores"]}

    def export_openvino(self, ov_class):
        return super().export_openvino(pipeline_ready(ov_class))

    def pipeline_checks(self, pipe) -> list[Check]:
        thresholds = THRESHOLDS["tiny" if self.tier == "tiny" else "hub"]
        result = pipe(synthetic_image(), **GRID, **thresholds)
        masks = [compat.as_tensor(mask) for mask in result["masks"]]
        scores = result["scores"].cpu()
        shapes = {tuple(mask.shape) for mask in masks}
        checks = [
            truth("found_masks", len(masks) > 0, "no mask passed the thresholds"),
            truth("mask_shapes_match_image", shapes <= {(HEIGHT, WIDTH)}, str(shapes)),
            truth("scores_descending", scores.tolist() == sorted(scores.tolist(), reverse=True),
                  str(scores.tolist())),
        ]  # fmt: skip
        if self.tier == "tiny":
            pixels = [int(mask.sum()) for mask in masks]
            checks += [
                self.golden_check("image_processor_class", type(pipe.image_processor).__name__),
                self.golden_check("mask_pixels", pixels, key="pipeline_mask_pixels"),
                self.golden_check("mask_scores", scores, ATOL),
            ]
        return checks

    def from_pretrained_checks(self, model, processor, pred_masks) -> list[Check]:
        inputs, outputs = self.last
        iou = outputs.iou_scores[0, 0].cpu()
        sizes = {key: inputs[key].tolist() for key in SIZES}
        masks = processor.post_process_masks(pred_masks.cpu(), **sizes)[0][0]  # 3 x H x W
        side = 4 * model.config.prompt_encoder_config.image_embedding_size
        checks = [
            equal("pred_masks_shape", list(pred_masks.shape), [1, 1, 3, side, side]),
            equal("iou_scores_shape", list(outputs.iou_scores.shape), [1, 1, 3]),
            equal("masks_shape", list(masks.shape), [3, HEIGHT, WIDTH]),
            *self.pipeline_agreement(model, processor, iou, masks),
        ]
        if self.tier == "tiny":
            pixel_values = inputs["pixel_values"][0]
            image_processor = processor.image_processor
            saved = json.loads(image_processor.to_json_string())
            settings = {key: saved.get(key) for key in IMAGE_PROCESSOR_SETTINGS}
            checks += [
                self.golden_check("weights_sha256", weights_sha256(model)),
                self.golden_check("image_processor_class", type(image_processor).__name__),
                self.golden_check("image_processor_settings", settings),
                self.golden_check("sizes", sizes),
                # POINT, scaled to the resized image
                self.golden_check("input_points", inputs["input_points"].tolist()),
                self.golden_check("pixel_values_stats", stats(pixel_values), ATOL),
                # across the square's left edge
                self.golden_check("pixel_values_slice", pixel_values[:, 36, 30:34], ATOL),
                self.golden_check("iou_scores", iou, ATOL),
                # low-res mask logits near POINT
                self.golden_check("pred_masks_slice", pred_masks[0, 0, :, 9, 10:14], ATOL),
                self.golden_check("pred_masks_stats", stats(pred_masks[0, 0]), ATOL),
                # true pixels of each post-processed mask
                self.golden_check("mask_pixels", masks.sum((-1, -2)).tolist()),
            ]  # fmt: skip
        else:
            low, high = IOU_RANGE
            best = int(iou.argmax())
            x, y = POINT
            checks += [
                truth("iou_scores_in_range", bool(((iou >= low) & (iou <= high)).all()),
                      f"{iou.tolist()} outside {IOU_RANGE}"),
                truth("point_in_best_mask", bool(masks[best, y, x]),
                      f"mask {best} (iou {iou[best]:.3f}) does not cover the point {POINT}"),
            ]  # fmt: skip
        return checks

    def oracle_checks(self, model, processor) -> list[Check]:
        """The mask SAM scores best for ORACLE_POINT covers one of the OBJECTS it lies on."""
        image = photo(ORACLE_PHOTO)
        inputs = processor(images=image, input_points=[[ORACLE_POINT]], return_tensors="pt")
        inputs = inputs.to(self.device)
        outputs = model(pixel_values=inputs["pixel_values"], input_points=inputs["input_points"])
        sizes = {key: inputs[key].cpu() for key in SIZES}
        masks = processor.post_process_masks(outputs.pred_masks.cpu(), **sizes)[0][0]
        scores = outputs.iou_scores[0, 0].cpu()
        best = int(scores.argmax())
        name, overlap = best_match(masks[best].numpy(), image.size)
        what = f"IoU of the best mask (score {scores[best]:.3f}) with {name}"
        return [bounded("point_mask_covers_object", overlap, MASK_IOU, what)]

    def pipeline_agreement(self, model, processor, iou, masks) -> list[Check]:
        """The pipeline's unfiltered masks at the grid point POINT are the direct model's."""
        pipe = pipeline(
            "mask-generation", model=model, image_processor=processor.image_processor,
            device=self.device,
        )  # fmt: skip
        result = pipe(synthetic_image(), **GRID, **NO_FILTERS)
        scores = result["scores"].cpu()
        piped = torch.stack([compat.as_tensor(mask) for mask in result["masks"]]).cpu()
        score_gap = (scores[None, :] - iou[:, None]).abs()  # direct mask x pipeline mask
        pixel_gap = (piped[None] != masks[:, None]).sum((-1, -2)).double()
        pixel_gap[score_gap > ATOL] = float("inf")
        match = pixel_gap.argmin(-1)  # per direct mask: its pipeline twin
        differing = pixel_gap.gather(1, match[:, None]).max().item()
        allowed = MAX_DIFFERING_PIXELS * HEIGHT * WIDTH
        return [
            close("pipeline_matches_model_scores", scores[match], iou, ATOL),
            truth("pipeline_matches_model_masks", differing <= allowed,
                  f"{differing} pixels differ (at most {allowed:g})"),
        ]  # fmt: skip


def stats(values: torch.Tensor) -> torch.Tensor:
    """Per leading index (channel or mask): the mean and std of the values."""
    flat = values.flatten(1)
    return torch.stack([flat.mean(-1), flat.std(-1)], dim=-1)


def object_masks(size: tuple[int, int]) -> dict[str, Any]:
    """OBJECTS as boolean numpy masks of an image of ``size`` (width, height)."""
    import numpy as np
    from PIL import Image, ImageDraw

    masks = {}
    for name, polygons in OBJECTS.items():
        canvas = Image.new("1", size)
        draw = ImageDraw.Draw(canvas)
        for polygon in polygons:
            draw.polygon(polygon, fill=1)
        masks[name] = np.asarray(canvas, dtype=bool)
    return masks


def best_match(mask: Any, size: tuple[int, int]) -> tuple[str, float]:
    """The object of OBJECTS that ``mask`` (a boolean array, height x width) matches best,
    and their intersection over union."""
    return max(
        ((name, iou(mask, region)) for name, region in object_masks(size).items()),
        key=lambda match: match[1],
    )


def iou(a: Any, b: Any) -> float:
    """The intersection over union of two boolean masks (0 when both are empty)."""
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def pipeline_ready(ov_sam_class: type) -> type:
    """optimum-intel's OVSamModel, fixed for transformers' mask-generation pipeline (2.2.0):
    it has no usable ``dtype`` and no ``get_image_embeddings``, and its own positional
    embeddings for the image_embeddings= path are freshly initialised, not the checkpoint's;
    here they come from the exported vision encoder's output, as in the PyTorch model."""

    class PipelineReadyOVSamModel(ov_sam_class):
        dtype = torch.float32

        def get_image_embeddings(self, pixel_values):
            out = self.vision_encoder(pixel_values)
            self.positional_embeddings = torch.as_tensor(out.image_positional_embeddings[:1])
            return torch.as_tensor(out.image_embeddings)

    return PipelineReadyOVSamModel


if __name__ == "__main__":
    raise SystemExit(family_main(TestSamModels))
