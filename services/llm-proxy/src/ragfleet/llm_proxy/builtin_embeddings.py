"""The built-in embedding model (all-MiniLM-L6-v2, the one retrieval uses), served in-process.

The model loads on first use, in the batcher's worker thread, so a proxy that never embeds never
pays for it.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from ragfleet.common.embeddings import Embedder, MicroBatcher
from ragfleet.llm_proxy.providers.extractive import count_tokens


class BuiltinEmbeddings:
    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.batcher = MicroBatcher(Embedder())

    async def embed(self, texts: list[str], encoding_format: str | None) -> dict[str, Any]:
        if len(texts) == 1:  # single texts from concurrent callers share one model call
            matrix = (await self.batcher.embed_one(texts[0]))[np.newaxis, :]
        else:
            matrix = await self.batcher.embed_many(texts)
        data = []
        for index, vector in enumerate(matrix):
            values: Any = (
                base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
                if encoding_format == "base64"
                else vector.astype(float).tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": values})
        tokens = sum(count_tokens(text) for text in texts)
        return {
            "object": "list",
            "data": data,
            "model": self.model_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def close(self) -> None:
        await self.batcher.close()
