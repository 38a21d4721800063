"""Pass protocol and pass manager.

A pass declares the properties it ``requires`` of its input and ``ensures`` of its output (strings
such as ``"validated"``, ``"attention_matched"``, ``"lowered"``, ``"quantized"``, ``"placed"``).
The manager runs passes in order, checks requirements, validates the graph between passes in debug
mode and turns any failure into a :class:`PassError` naming the pass and the passes before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.errors import PassError, TripartiteError

LOWERINGS = ("exact", "favor", "relu", "elu1", "taylor2", "learned")
PRECISIONS = ("float64", "float32", "loihi2")
ROUNDINGS = ("nearest", "compensated")
DEFAULT_MAX_TOKENS = 128


@dataclass
class CompileOptions:
    """Everything a compile may be told.  ``per_layer`` maps attention node names to lowerings."""

    lowering: str = "exact"
    features: int = 256
    seed: int = 0
    orthogonal: bool = False
    precision: str = "float64"
    max_tokens: int | None = None  # None: DEFAULT_MAX_TOKENS, or fewer where the position table is shorter
    per_layer: dict[str, str] = field(default_factory=dict)
    calibration: Any = None
    feature_maps: Any = None
    window: int | None = None
    chip: str = "loihi2"
    debug: bool = False
    rounding: str = "nearest"
    outlier_ratio: float = 0.0
    split_qk: bool = False
    force: bool = False

    def __post_init__(self):
        for name, lowering in [("lowering", self.lowering)] + list(self.per_layer.items()):
            if lowering not in LOWERINGS:
                raise TripartiteError(f"unknown lowering {lowering!r} for {name}; choose one of {', '.join(LOWERINGS)}")
        if self.precision not in PRECISIONS:
            raise TripartiteError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.rounding not in ROUNDINGS:
            raise TripartiteError(f"unknown rounding {self.rounding!r}; choose one of {', '.join(ROUNDINGS)}")
        if not self.outlier_ratio >= 0:
            raise TripartiteError(f"--outlier-ratio must be >= 0 (0: no outlier groups), got {self.outlier_ratio}")
        if self.features < 1 or (self.max_tokens is not None and self.max_tokens < 1):
            raise TripartiteError("--features and --max-tokens must be positive")


class Pass:
    """Base class: subclasses set ``name``, ``requires``, ``ensures`` and implement :meth:`run`."""

    name: str = "pass"
    requires: tuple[str, ...] = ()
    ensures: tuple[str, ...] = ()

    def run(self, graph, options: CompileOptions):
        """Return the transformed graph (possibly a new object of another IR)."""
        raise NotImplementedError


@dataclass
class PassRecord:
    name: str
    seconds: float


class PassManager:
    """Runs a list of passes, tracking which properties hold."""

    def __init__(self, passes: list[Pass]):
        self.passes = passes
        self.history: list[PassRecord] = []

    def run(self, graph, options: CompileOptions, progress=None):
        import time

        holds: set[str] = set()
        for p in self.passes:
            missing = [r for r in p.requires if r not in holds]
            if missing:
                raise PassError(f"pass {p.name!r} requires {missing}, which no earlier pass ensured ({self.ran()})")
            start = time.perf_counter()
            try:
                graph = p.run(graph, options)
                if options.debug:
                    graph.validate()
            except PassError:
                raise
            except TripartiteError as exc:
                raise PassError(f"pass {p.name!r} failed after {self.ran()}: {exc}") from exc
            except Exception as exc:  # a bug in a pass: name it, keep the chain for --debug
                raise PassError(f"pass {p.name!r} crashed after {self.ran()}: {type(exc).__name__}: {exc}") from exc
            self.history.append(PassRecord(p.name, time.perf_counter() - start))
            holds.update(p.ensures)
            if progress is not None:
                progress(p.name)
        return graph

    def ran(self) -> str:
        names = [r.name for r in self.history]
        return "passes run before: " + (", ".join(names) if names else "none")
