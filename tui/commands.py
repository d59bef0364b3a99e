"""The command palette's providers: a preset to open in the editor, and the active screen's keys.

The app's own commands (runs, presets, go to the run, quit) are its system commands (tui/app.py).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from engine.experiment.presets import Preset


class PresetCommands(Provider):
    """For every preset, "New run from preset: <name>", which opens it in the editor."""

    async def startup(self) -> None:
        from engine.experiment.presets import load_presets

        self.presets, _ = await asyncio.to_thread(load_presets, self.app.user_presets_dir)

    def _command(self, preset: Preset) -> tuple[str, str]:
        exp = preset.experiment
        return f"New run from preset: {preset.name}", f"{exp.model.arch} on {exp.data.dataset} · {preset.description}"

    async def discover(self) -> Hits:
        for preset in self.presets:
            text, help_text = self._command(preset)
            yield DiscoveryHit(text, partial(self.app.open_preset, preset), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for preset in self.presets:
            text, help_text = self._command(preset)
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self.app.open_preset, preset), help=help_text)


class ScreenActionsProvider(Provider):
    """The active screen's own key bindings (those it shows, and may run now)."""

    def _actions(self) -> list[tuple[str, str, str]]:
        screen = self.screen
        out = []
        for binding in getattr(screen, "BINDINGS", []):
            if not isinstance(binding, Binding) or not binding.show or not binding.description:
                continue
            if screen.check_action(binding.action, ()) is not True:
                continue
            key = binding.key.split(",")[0]
            out.append((binding.description, binding.action, f"key: {key}"))
        return out

    async def discover(self) -> Hits:
        for title, action, help_text in self._actions():
            yield DiscoveryHit(title, partial(self.screen.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in self._actions():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.screen.run_action, action), help=help_text)
