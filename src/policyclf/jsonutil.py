"""JSON that spreadsheets and other tools can read: NaN becomes null, numpy numbers plain numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def clean_json(obj: Any) -> Any:
    """JSON-safe: NaN/inf → null, numpy scalars → Python numbers, floats rounded to 5 places."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else round(float(obj), 5)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` cleaned, indented, UTF-8, with a final newline (strict JSON: no NaN)."""
    Path(path).write_text(json.dumps(clean_json(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                          encoding="utf-8")
