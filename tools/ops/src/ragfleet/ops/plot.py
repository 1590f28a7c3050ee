"""Renders a watch timeline to PNG: what the load-test report embeds.

Four panels sharing the time axis: ready replicas per component (desired dashed), HPA current
and desired replicas, cumulative container restarts, and PDB disruptions allowed with the
evictions marked — so a reader sees that the HPA scaled and that the PDB held during a drain.
matplotlib is an optional dependency (``ragfleet-ops[plot]``); it is imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragfleet.ops.timeline import PNG_NAME, Timeline, components_in, load_timeline


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def _series(timeline: Timeline, component: str, value: Any) -> tuple[list[float], list[float]]:
    times, values = [], []
    for sample in timeline.samples:
        for c in sample["components"]:
            if c["component"] == component:
                v = value(c)
                if v is not None:
                    times.append(sample["t"])
                    values.append(v)
    return times, values


def plot_timeline(source: Path, png_path: Path | None = None) -> Path:
    """Draws timeline.jsonl (or the directory holding it) to PNG; returns the PNG's path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise PlotUnavailableError(
            "matplotlib is not installed: install ragfleet-ops[plot] to draw the timeline"
        ) from error

    timeline = load_timeline(source)
    png_path = png_path or (source if source.is_dir() else source.parent) / PNG_NAME
    components = components_in(timeline.samples)
    palette = plt.get_cmap("tab10")
    colors: dict[str, Any] = {c: palette(i % 10) for i, c in enumerate(components)}

    figure, (replicas, hpa, restarts, pdb) = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    for component in components:
        color = colors[component]
        replicas.step(
            *_series(timeline, component, lambda c: c["ready"]), where="post", color=color, label=component
        )
        replicas.step(
            *_series(timeline, component, lambda c: c["desired"]),
            where="post",
            color=color,
            linestyle=":",
            alpha=0.6,
        )
        t, current = _series(timeline, component, lambda c: c["hpa"]["current"] if c["hpa"] else None)
        if t:
            hpa.step(t, current, where="post", color=color, label=f"{component} current")
            hpa.step(
                *_series(timeline, component, lambda c: c["hpa"]["desired"] if c["hpa"] else None),
                where="post",
                color=color,
                linestyle="--",
                label=f"{component} desired",
            )
        restarts.step(
            *_series(timeline, component, lambda c: c["restarts"]), where="post", color=color, label=component
        )
        t, allowed = _series(
            timeline, component, lambda c: c["pdb"]["disruptions_allowed"] if c["pdb"] else None
        )
        if t:
            pdb.step(t, allowed, where="post", color=color, label=component)

    for event in timeline.events:
        color = colors.get(event.get("component", ""), "black")
        if event["kind"] == "evicted":
            for axis in (replicas, pdb):
                axis.axvline(event["t"], color="red", alpha=0.5, linewidth=1)
            pdb.plot([event["t"]], [0], marker="x", color="red", markersize=9)
        elif event["kind"] == "hpa-desired":
            hpa.axvline(event["t"], color=color, alpha=0.3, linewidth=1)
        elif event["kind"] == "restart":
            restarts.axvline(event["t"], color=color, alpha=0.3, linewidth=1)

    replicas.set_title("Ready replicas per component (dotted: desired; red lines: evictions)", fontsize=10)
    hpa.set_title("HPA replicas: current (solid) and desired (dashed)", fontsize=10)
    restarts.set_title("Container restarts (cumulative)", fontsize=10)
    pdb.set_title("PDB disruptions allowed (x: pod evicted)", fontsize=10)
    pdb.set_xlabel("seconds since the command started")
    for axis in (replicas, hpa, restarts, pdb):
        axis.grid(alpha=0.3)
        axis.yaxis.get_major_locator().set_params(integer=True)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper left", fontsize=7, ncol=3)
        else:
            axis.text(
                0.5, 0.5, "nothing recorded", transform=axis.transAxes, ha="center", va="center", color="grey"
            )
    meta, end = timeline.meta, timeline.end or {}
    title = f"ragfleet cluster timeline - namespace {meta.get('namespace', '?')} - {len(timeline.samples)} samples"
    if "exit_code" in end:
        title += f" - command exit code {end['exit_code']}"
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return png_path
