from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from ragfleet.llm_proxy.config import LlmProxySettings


def test_models_from_env_json_and_a_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    models_file = tmp_path / "models.yaml"
    models_file.write_text(
        f"models:\n  - name: local\n    base_url: http://vllm:8000/v1\n    api_key_file: {key_file}\n"
        "    weight: 3\n    fallbacks: [extractive]\n"
    )
    monkeypatch.setenv(
        "RAGFLEET_LLM_PROXY_MODELS",
        json.dumps([{"name": "gpt", "base_url": "https://api.openai.com/v1", "api_key": "sk-inline"}]),
    )
    monkeypatch.setenv("RAGFLEET_LLM_PROXY_MODELS_FILE", str(models_file))
    deployments = LlmProxySettings().deployments
    assert [d.name for d in deployments] == ["gpt", "local", "extractive"]
    assert deployments[0].read_api_key() == "sk-inline"
    assert deployments[1].read_api_key() == "sk-from-file"
    assert deployments[2].provider == "extractive"


def test_bad_model_lists_are_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="needs base_url"):
        LlmProxySettings(models=[{"name": "x"}])
    with pytest.raises(ValueError, match="unknown fallback models"):
        _ = LlmProxySettings(
            models=[{"name": "x", "provider": "extractive", "fallbacks": ["nope"]}]
        ).deployments


def test_per_key_limits_override_the_default() -> None:
    settings = LlmProxySettings(rate_limit_rpm=60, key_limits={"key:vip": {"rpm": 600, "tpm": 0}})
    assert settings.limits_for("key:vip").rpm == 600
    assert settings.limits_for("key:other").rpm == 60
