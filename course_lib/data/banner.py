"""Saying which data a result was computed on, where a learner looks: a coloured banner."""
from __future__ import annotations

import html

_GREEN = "border-left:6px solid #2e7d32;background:#e8f5e9;color:#1b5e20"
_AMBER = "border-left:6px solid #f9a825;background:#fff8e1;color:#5d4200"


def source_banner(dataset) -> str:
    """An HTML snippet for ``IPython.display.HTML``: green for real data, amber for the
    embedded fallback (with the command that fetches the real set) and for a demo folder
    (``dataset.is_demo``: made by the course, e.g. from the embedded faces)."""
    source = html.escape(getattr(dataset, "source", "unknown source"))
    box = "padding:6px 10px;margin:4px 0;border-radius:3px;font-family:sans-serif"
    if getattr(dataset, "is_demo", False):   # a folder the course made up, e.g. from embedded faces
        return (f'<div class="course-data-banner demo" style="{box};{_AMBER}">'
                f"<b>Demo folder, not your data:</b> {source}. Set <code>MY_PHOTOS</code> to a "
                f"folder of your own photos.</div>")
    if getattr(dataset, "is_embedded", False):
        name = html.escape(getattr(dataset, "registry_name", None) or "NAME")
        return (f'<div class="course-data-banner embedded" style="{box};{_AMBER}">'
                f"<b>Embedded fallback:</b> {source}. Run "
                f"<code>python data_scripts/get_data.py {name}</code> for the real set."
                f"</div>")
    return (f'<div class="course-data-banner real" style="{box};{_GREEN}">'
            f"<b>Real data:</b> {source}</div>")


def summary_lines(dataset) -> list[str]:
    """What :func:`print_summary` prints, as lines (tests and logs use them)."""
    kind = "EMBEDDED FALLBACK" if getattr(dataset, "is_embedded", False) else "real data"
    lines = [f"{kind}: {dataset.source}"]
    if hasattr(dataset, "domain_a"):
        lines.append(f"{len(dataset.domain_a)} A images, {len(dataset.domain_b)} B images, "
                     f"items (a, b) float [3, {dataset.domain_a.size}, "
                     f"{dataset.domain_a.size}] in [-1, 1]")
    else:
        size = getattr(dataset, "size", "?")
        lines.append(f"{len(dataset)} images, items (image float [3, {size}, {size}] in "
                     f"[-1, 1], label)")
    if hasattr(dataset, "summary"):
        lines.append(dataset.summary())
    if getattr(dataset, "is_embedded", False):
        name = getattr(dataset, "registry_name", None) or "NAME"
        lines.append(f"for the real set: python data_scripts/get_data.py {name}")
    return lines


def print_summary(dataset) -> None:
    """Print what the data is, how much of it, its item shape, and anything skipped."""
    print("\n".join(summary_lines(dataset)))
