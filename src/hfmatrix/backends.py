"""A model on a backend other than the reference (PyTorch fp32 on the CPU): PyTorch on
another device, or exported to OpenVINO through optimum-intel and compiled for the CPU in
f32. Kept small: these are the lines to check by eye."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hfmatrix import hardware as hardware_module
from hfmatrix.expectations import installed

if TYPE_CHECKING:
    from hfmatrix.harness import FamilyTest

REFERENCE = "PyTorch fp32 on the CPU, computed in the same run"
# f32 compute and KV cache: OpenVINO's CPU defaults may be bf16 and f16 (ANCHORS.md)
OPENVINO_F32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}


def load_model(test: FamilyTest, hardware: str) -> tuple[Any, Any]:
    """(model, processor) of ``test``'s model on ``hardware``; sets ``test.device``."""
    test.device = hardware_module.device(hardware)
    if hardware != "openvino":
        model, processor, _ = test.load_model(test.dtype)
        if test.dtype != "float32":
            cast_float_inputs(model)
        return model, processor
    return openvino_model(test), test.load_processor()


def pipeline(test: FamilyTest, hardware: str) -> Any:
    """``pipeline(task, ...)`` of ``test``'s model on ``hardware``; sets ``test.device``."""
    test.device = hardware_module.device(hardware)
    if hardware != "openvino":
        return test.load_pipeline(test.dtype)
    from transformers import pipeline as make_pipeline

    parts = test.pipeline_parts(test.load_processor())
    return make_pipeline(test.pipeline_task(), model=openvino_model(test), **parts)


class ExportFailed(RuntimeError):
    """The model could not be exported to OpenVINO (an unsupported architecture, a
    transformers version the exporter refuses): the class's finding on this backend."""


def openvino_model(test: FamilyTest) -> Any:
    """The model exported to OpenVINO and compiled, once per test object (a failed export
    fails both tests with its message, without a second try)."""
    if test.exported is None:
        import optimum.intel

        try:
            test.exported = test.export_openvino(getattr(optimum.intel, test.openvino_class))
        except Exception as exc:  # a finding about the class on this backend, named as such
            test.exported = ExportFailed(
                f"optimum-intel {installed('optimum-intel')} could not export "
                f"{test.model_class} to OpenVINO: {type(exc).__name__}: {exc}"
            )
    if isinstance(test.exported, Exception):
        raise test.exported
    test.loaded = {
        "class": type(test.exported).__name__,
        "dtype": "f32 (INFERENCE_PRECISION_HINT)",
        "revision": test.source.revision,
    }
    return test.exported


def cast_float_inputs(model: Any) -> None:
    """Cast the floating-point inputs of each module that holds weights to those weights'
    dtype, as pipelines do for the model's inputs: the family's inputs are made in fp32
    for the reference, and some layers stay fp32 on purpose (T5's ``wo``)."""
    import torch

    def hook(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        weight = next(module.parameters(recurse=False), None)
        if weight is None or not weight.is_floating_point():
            return args, kwargs

        def cast(value: Any) -> Any:
            floating = isinstance(value, torch.Tensor) and value.is_floating_point()
            return value.to(weight.dtype) if floating else value

        return tuple(map(cast, args)), {key: cast(value) for key, value in kwargs.items()}

    for module in model.modules():
        module.register_forward_pre_hook(hook, with_kwargs=True)
