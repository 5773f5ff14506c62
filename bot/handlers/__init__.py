"""Command handlers, grouped by what they answer from, and the registry they form."""
from __future__ import annotations

from bot.commands import Registry
from bot.handlers.conversation import SPECS as CONVERSATION_SPECS
from bot.handlers.conversation import clarify, fallback, smalltalk
from bot.handlers.knowledge import SPECS as KNOWLEDGE_SPECS
from bot.handlers.mock import SPECS as MOCK_SPECS
from bot.handlers.nudge import SPECS as NUDGE_SPECS
from bot.handlers.progress import SPECS as PROGRESS_SPECS

__all__ = ["build_registry", "clarify", "fallback", "smalltalk"]


def build_registry() -> Registry:
    registry = Registry()
    for spec in (*KNOWLEDGE_SPECS, *CONVERSATION_SPECS, *PROGRESS_SPECS, *MOCK_SPECS, *NUDGE_SPECS):
        registry.add(spec)
    return registry
