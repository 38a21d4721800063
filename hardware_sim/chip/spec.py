"""Chip descriptions as data: JSON files beside this module, validated on load, user-overridable.

A description holds the per-core budget (neurons, synaptic memory, axons), word widths and a table
of per-operation energy and time costs, each with its source in ``sources``.  Overrides are a JSON
file (or dict) with any subset of the same keys; ``costs`` entries are merged one by one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.errors import TripartiteError

HERE = Path(__file__).parent
FORMAT = "tripartite-chip"

LIMITS = ("cores_per_chip", "cores_per_tile", "neurons_per_core", "synaptic_memory_bytes_per_core",
          "input_axons_per_core", "output_axons_per_core", "weight_bits", "state_bits", "message_payload_bits")
COSTS = ("synop_energy_j", "synop_time_s", "synaptic_update_energy_j", "synaptic_update_time_s",
         "neuron_update_energy_j", "neuron_update_time_s", "neuron_idle_energy_j", "spike_within_tile_energy_j",
         "spike_within_tile_time_s", "tile_hop_energy_j", "tile_hop_time_s", "chip_hop_energy_j",
         "chip_hop_time_s", "barrier_time_s", "steps_per_token")
OTHER = ("format", "version", "name", "description", "graded_spikes", "costs", "sources")


class ChipError(TripartiteError):
    """A chip description is missing, malformed or names an unknown key."""


@dataclass(frozen=True)
class Chip:
    """A validated chip description (see ``loihi2.json``)."""

    name: str
    description: str
    cores_per_chip: int
    cores_per_tile: int
    neurons_per_core: int
    synaptic_memory_bytes_per_core: int
    input_axons_per_core: int
    output_axons_per_core: int
    weight_bits: int
    state_bits: int
    message_payload_bits: int
    graded_spikes: bool
    costs: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("name", "description", *LIMITS, "graded_spikes")}
        return {"format": FORMAT, "version": 1, **d, "costs": dict(self.costs), "sources": dict(self.sources)}


def available() -> list[str]:
    """Names of the bundled chip descriptions."""
    return sorted(p.stem for p in HERE.glob("*.json"))


def _read(source: str | Path | dict, what: str) -> tuple[dict, str]:
    if isinstance(source, dict):
        return dict(source), what
    path = Path(source)
    if not path.suffix and not path.exists():
        path = HERE / f"{source}.json"
        if not path.exists():
            raise ChipError(f"unknown chip {str(source)!r}; choose one of {', '.join(available())} or give a JSON file")
    try:
        return json.loads(path.read_text()), str(path)
    except FileNotFoundError:
        raise ChipError(f"chip description {path} not found") from None
    except json.JSONDecodeError as exc:
        raise ChipError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _check_keys(data: dict, where: str) -> None:
    unknown = set(data) - set(LIMITS) - set(OTHER)
    if unknown:
        raise ChipError(f"{where}: unknown key(s) {sorted(unknown)}; known: {', '.join(LIMITS + OTHER)}")
    unknown = set(data.get("costs", {})) - set(COSTS)
    if unknown:
        raise ChipError(f"{where}: unknown cost(s) {sorted(unknown)}; known: {', '.join(COSTS)}")


def _positive(value, key: str, where: str, integer: bool) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not value > 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ChipError(f"{where}: {key} must be {kind}, got {value!r}")


def load_chip(chip: str | Path | dict | Chip = "loihi2", overrides: str | Path | dict | None = None) -> Chip:
    """Load a bundled chip by name (``loihi2``, ``loihi1``) or a JSON file, then apply ``overrides``."""
    if isinstance(chip, Chip):
        data, where = chip.to_dict(), chip.name
    else:
        data, where = _read(chip, "chip description")
    _check_keys(data, where)
    if data.get("format", FORMAT) != FORMAT:
        raise ChipError(f"{where}: format is {data.get('format')!r}, expected {FORMAT!r}")
    if overrides is not None:
        extra, owhere = _read(overrides, "chip overrides")
        _check_keys(extra, owhere)
        costs = {**data.get("costs", {}), **extra.pop("costs", {})}
        sources = {**data.get("sources", {}), **extra.pop("sources", {})}
        sources.update({k: f"user override ({owhere})" for k in extra if k in LIMITS})
        data = {**data, **extra, "costs": costs, "sources": sources}
        where = f"{where} + {owhere}"
    missing = [k for k in LIMITS if k not in data] + [f"costs.{k}" for k in COSTS if k not in data.get("costs", {})]
    if missing:
        raise ChipError(f"{where}: missing {', '.join(missing)}")
    for k in LIMITS:
        _positive(data[k], k, where, integer=True)
    for k in COSTS:
        _positive(data["costs"][k], f"costs.{k}", where, integer=False)
    return Chip(name=str(data.get("name", where)), description=str(data.get("description", "")),
                graded_spikes=bool(data.get("graded_spikes", False)),
                costs={k: float(data["costs"][k]) for k in COSTS}, sources=dict(data.get("sources", {})),
                **{k: int(data[k]) for k in LIMITS})
