"""The model list: which deployments serve a model name, in which order to try them, what comes after."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ragfleet.common.errors import NotFound
from ragfleet.llm_proxy.config import ModelDeployment
from ragfleet.llm_proxy.providers.base import ChatProvider
from ragfleet.llm_proxy.providers.extractive import ExtractiveProvider
from ragfleet.llm_proxy.providers.openai_compatible import OpenAICompatibleProvider
from ragfleet.llm_proxy.upstream_http import UpstreamClient


@dataclass(frozen=True)
class Deployment:
    config: ModelDeployment
    provider: ChatProvider
    upstream_id: str  # the breaker's identity, and the `upstream` metric label

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def upstream_model(self) -> str:
        return self.config.upstream_model or self.config.name


def upstream_id(config: ModelDeployment) -> str:
    if config.upstream_id:
        return config.upstream_id
    if config.base_url is None:
        return config.name
    parts = urlsplit(config.base_url)
    return f"{config.upstream_model or config.name}@{parts.netloc}{parts.path.rstrip('/')}"


class ModelRegistry:
    def __init__(self, configs: Sequence[ModelDeployment], client: UpstreamClient) -> None:
        self.groups: dict[str, list[Deployment]] = {}
        for config in configs:
            provider: ChatProvider
            if config.provider == "extractive":
                provider = ExtractiveProvider(config.name)
            else:
                provider = OpenAICompatibleProvider(config, client)
            self.groups.setdefault(config.name, []).append(Deployment(config, provider, upstream_id(config)))

    def names(self) -> list[str]:
        return list(self.groups)

    def deployments(self, model: str) -> list[Deployment]:
        group = self.groups.get(model)
        if group is None:
            raise NotFound(
                f"model {model!r} is not served here; known models: {', '.join(self.groups)}",
                code="model_not_found",
            )
        return group

    def chain(self, model: str) -> list[str]:
        """The model, then its fallbacks in order (each deployment's, first seen first), no repeats."""
        chain = [model]
        for deployment in self.deployments(model):
            for fallback in deployment.config.fallbacks:
                if fallback not in chain:
                    chain.append(fallback)
        return chain

    def ordered(self, model: str, rng: random.Random) -> list[Deployment]:
        """The model's deployments in a weighted random order: the first is picked by weight, and so on."""
        remaining = list(self.deployments(model))
        if len(remaining) == 1:
            return remaining
        ordered = []
        while remaining:
            pick = rng.choices(range(len(remaining)), weights=[d.config.weight for d in remaining])[0]
            ordered.append(remaining.pop(pick))
        return ordered
