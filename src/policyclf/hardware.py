"""What this machine can do fast: CPU flags, the precision and device to use.

bfloat16 on a CPU without native bf16 instructions is emulated and about ten times slower
than float32, so ``auto`` chooses bfloat16 only where the CPU has ``avx512_bf16`` or
``amx_bf16`` (or on a CUDA GPU), and float32 otherwise. An explicit setting always wins.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
from typing import Any

log = logging.getLogger("policyclf")

FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx_vnni")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """CPU model name, the SIMD flags that matter for inference, and the usable core count."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"model": model, "flags": {f: f in flags for f in FLAGS_OF_INTEREST}, "cores": cores,
            "machine": platform.machine()}


# oneDNN ISA names below AVX512_CORE_BF16, and ATen capabilities without AVX-512: torch held to these
# (``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY``) emulates bf16 even where the CPU has it.
_ONEDNN_NO_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}
_ATEN_NO_BF16 = {"default", "avx2"}


# Environment variables that hold torch's kernels to lower instruction sets: oneDNN (bf16 and int8
# matrix products), ATen's own vectorised kernels, and MKL (float32 matrix products on x86).
ISA_LIMIT_VARS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def isa_limits() -> dict[str, str]:
    """The environment variables that hold torch to lower CPU instruction sets, where set."""
    return {k: os.environ[k] for k in ISA_LIMIT_VARS if os.environ.get(k)}


def _cpu_has_bf16() -> bool:
    return any(cpu_info()["flags"].get(f) for f in NATIVE_BF16_FLAGS)


def _torch_held_below_bf16() -> bool:
    limits = isa_limits()
    return (limits.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ONEDNN_NO_BF16
            or limits.get("ATEN_CPU_CAPABILITY", "").lower() in _ATEN_NO_BF16)


def native_bf16() -> bool:
    """True if the CPU computes bfloat16 natively (avx512_bf16 or AMX) and torch is not held below it."""
    return _cpu_has_bf16() and not _torch_held_below_bf16()


def describe_cpu() -> str:
    """One line naming the CPU and its flags, for benchmarks and run metadata."""
    info = cpu_info()
    on = [f for f, v in info["flags"].items() if v]
    return f"{info['model']} ({info['machine']}, {info['cores']} cores; flags: {', '.join(on) or 'none of ' + ', '.join(FLAGS_OF_INTEREST)})"


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when a GPU is usable, else ``cpu``; other names pass through (checked)."""
    from policyclf.errors import ModelError

    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise ModelError(f"device {name!r}: expected auto, cpu or cuda")
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if name == "auto":
        return "cuda" if has_cuda else "cpu"
    if name.startswith("cuda") and not has_cuda:
        raise ModelError(f"device {name!r} asked for, but no CUDA GPU is available here; use --device cpu or auto")
    return name


def resolve_precision(requested: str, device: str) -> tuple[str, str]:
    """(precision, why) for inference: an explicit request wins; ``auto`` follows the hardware."""
    if requested != "auto":
        if requested == "bfloat16" and device == "cpu" and not native_bf16():
            log.warning("bfloat16 requested on a CPU without native bf16 (emulated, ~10x slower than float32)")
        return requested, "set explicitly"
    if device.startswith("cuda"):
        return "bfloat16", "auto: CUDA GPU"
    if native_bf16():
        return "bfloat16", "auto: CPU has native bf16 (" + ", ".join(f for f in NATIVE_BF16_FLAGS if cpu_info()["flags"][f]) + ")"
    if _cpu_has_bf16():  # the CPU has it, but torch is held below it
        limits = ", ".join(f"{k}={v}" for k, v in isa_limits().items())
        return "float32", f"auto: torch held below native bf16 ({limits}; bf16 would be emulated)"
    return "float32", "auto: CPU has no native bf16 (bf16 would be emulated)"
