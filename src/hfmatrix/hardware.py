"""Hardware backends: probes that need no torch (for nox), and device facts inside an env."""

from __future__ import annotations

import glob
import importlib.util
import platform
import shutil
import subprocess
import sys

OPENVINO_MACHINES = {"x86_64", "amd64", "aarch64", "arm64"}


def probe(hardware: str) -> str | None:
    """Why ``hardware`` is unusable on this machine, or None; never imports torch."""
    if hardware == "cpu":
        return None
    if hardware == "cuda":
        return _probe_cuda()
    if hardware == "openvino":  # OpenVINO's CPU plugin: x86-64 and ARM64 processors
        machine = platform.machine().lower()
        return None if machine in OPENVINO_MACHINES else f"OpenVINO has no CPU plugin for {machine}"
    if hardware == "mps":
        apple = sys.platform == "darwin" and platform.machine() == "arm64"
        return None if apple else "mps needs an Apple silicon Mac"
    return f"unknown hardware {hardware!r}"


def _probe_cuda() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        if glob.glob("/dev/nvidia[0-9]*"):
            return None
        return "no NVIDIA GPU: nvidia-smi not found and no /dev/nvidia* device"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi failed: {exc}"
    if out.returncode != 0 or "GPU" not in out.stdout:
        return f"nvidia-smi lists no GPU: {(out.stderr or out.stdout).strip()[:200]}"
    return None


def usable(hardware: str) -> str | None:
    """Why ``hardware`` is unusable from this Python environment's torch, or None."""
    if hardware == "cpu":
        return None
    if hardware == "cuda":
        import torch

        if not torch.cuda.is_available():
            return f"torch {torch.__version__} sees no CUDA device"
        return None
    if hardware == "mps":
        import torch

        if not torch.backends.mps.is_available():
            return f"torch {torch.__version__} sees no MPS device"
        return None
    if hardware == "openvino":
        missing = [m for m in ("openvino", "optimum.intel") if not _importable(m)]
        if missing:
            return f"{' and '.join(missing)} not installed in this environment"
    return probe(hardware)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def device(hardware: str) -> str:
    """The torch device string that models and inputs go to (OpenVINO takes CPU tensors)."""
    return {"cuda": "cuda:0", "mps": "mps"}.get(hardware, "cpu")


def strict_fp32(hardware: str) -> None:
    """fp32 means fp32: no TF32 in cuDNN convolutions or matmuls (both can be on by default),
    so a GPU is compared with the CPU reference on equal terms."""
    if hardware == "cuda":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")


def device_facts(hardware: str) -> dict[str, str | None]:
    """Name (and driver) of the device a run used."""
    if hardware == "cuda":
        import torch

        return {
            "name": torch.cuda.get_device_name(0),
            "cuda": torch.version.cuda,
            "driver": _nvidia_driver(),
        }
    if hardware == "openvino":
        import openvino

        name = openvino.Core().get_property("CPU", "FULL_DEVICE_NAME")
        return {"name": str(name), "openvino": openvino.get_version(), "device": "CPU"}
    return {"name": platform.processor() or platform.machine(), "machine": platform.machine()}


def _nvidia_driver() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    query = [smi, "--query-gpu=driver_version", "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return (
        out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    )
