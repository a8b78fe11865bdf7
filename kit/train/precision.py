"""Which float precision a run computes in: bf16 where the CPU has it natively, else fp32."""
from __future__ import annotations

import re
from pathlib import Path

PRECISIONS = ("auto", "bf16", "fp32")     # auto: bf16 where the CPU computes it natively


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); emulated bf16 is
    several times slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def resolve_precision(precision: str) -> str:
    """``auto`` as bf16 where the CPU has native bf16, else fp32; others as given."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16() else "fp32"
