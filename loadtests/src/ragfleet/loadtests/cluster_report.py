"""The cluster timeline section of a load-test report: what `ragfleet-ops watch` saw while Locust
ran (replicas per component, HPA decisions, restarts, evictions, the PDBs), appended to the page
``report.write`` made. Kept free of Locust imports (``report`` imports Locust, which monkey-patches
the process): the runner calls this after Locust's process has ended.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ragfleet.ops.plot import plot_timeline
from ragfleet.ops.timeline import component_summaries, load_timeline

# The same names as ragfleet.loadtests.report's (not imported from there: see above).
SUMMARY_PAGE = "summary.md"
SUMMARY_JSON = "summary.json"
CLUSTER_PLOT = "cluster-timeline.png"
# Events listed under the cluster plot; the full list is in the timeline directory.
CLUSTER_EVENTS_SHOWN = 40


def add_cluster_timeline(directory: Path, timeline_dir: Path) -> Path:
    """Embeds a `ragfleet-ops watch` timeline in the run's report: the plot (replicas per
    component, HPA decisions, restarts, PDB and evictions), a table per component and the events,
    appended to summary.md; the same facts under "cluster" in summary.json."""
    timeline = load_timeline(timeline_dir)
    plot_timeline(timeline_dir, directory / CLUSTER_PLOT)
    summaries = component_summaries(timeline)

    def shown(value: Any) -> str:
        return "-" if value is None else str(value)

    meta = timeline.meta
    lines = [
        "",
        "## Cluster timeline",
        "",
        f"Recorded by `ragfleet-ops watch` every {meta.get('interval', '?')} s in namespace "
        f"{meta.get('namespace', '?')} ({meta.get('selector', '?')}): {len(timeline.samples)} samples, "
        f"{len(timeline.events)} events, {len(timeline.errors)} failed samples. "
        f"Files: `{timeline_dir.name}/timeline.jsonl`, `{timeline_dir.name}/timeline.csv`.",
        "",
        f"![{CLUSTER_PLOT}]({CLUSTER_PLOT})",
        "",
        "| component | ready first → last (min-max) | HPA desired first → last (max) | restarts | evictions | PDB allowed (min) |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {c['component']} | {c['ready_first']} → {c['ready_last']} ({c['ready_min']}-{c['ready_max']}) | "
        f"{shown(c['hpa_desired_first'])} → {shown(c['hpa_desired_last'])} ({shown(c['hpa_desired_max'])}) | "
        f"{c['restarts']} | {c['evictions']} | {shown(c['pdb_allowed_min'])} |"
        for c in summaries
    ]
    if timeline.events:
        lines += ["", "| t (s) | event | component | what |", "| ---: | --- | --- | --- |"]
        lines += [
            f"| {e['t']:.0f} | {e['kind']} | {e.get('component') or '-'} | {e['message'].replace('|', '/')} |"
            for e in timeline.events[:CLUSTER_EVENTS_SHOWN]
        ]
        if len(timeline.events) > CLUSTER_EVENTS_SHOWN:
            lines.append(f"\n{len(timeline.events) - CLUSTER_EVENTS_SHOWN} more events in the timeline.")
    page = directory / SUMMARY_PAGE
    before = (
        page.read_text(encoding="utf-8")
        if page.exists()
        else "# Load test: no summary (the run wrote none)\n"
    )
    page.write_text(before.rstrip("\n") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    facts_path = directory / SUMMARY_JSON
    facts = json.loads(facts_path.read_text(encoding="utf-8")) if facts_path.exists() else {}
    facts["cluster"] = {
        "timeline": str(timeline_dir),
        "plot": CLUSTER_PLOT,
        "samples": len(timeline.samples),
        "components": summaries,
        "events": timeline.events,
    }
    facts_path.write_text(json.dumps(facts, indent=2), encoding="utf-8")
    return page
