"""Providers: where completions come from (an OpenAI-compatible upstream, or the built-in extractive one)."""
