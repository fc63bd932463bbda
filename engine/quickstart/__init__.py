"""The README's main job: generate a world, log, train, compile, serve, evaluate."""

from engine.quickstart.run import QuickstartConfig, run

__all__ = ["QuickstartConfig", "run"]
