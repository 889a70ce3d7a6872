"""Figures and tables drawn from the store: class counts, loss curves, confusion matrices, lengths."""
from __future__ import annotations

import html

import pandas as pd


def class_counts(videos: list[dict]) -> pd.DataFrame:
    rows = {}
    for v in videos:
        key = (v["label"] or "(unlabelled)", v["split"])
        rows[key] = rows.get(key, 0) + 1
    return pd.DataFrame([{"class": c, "split": s, "videos": n} for (c, s), n in sorted(rows.items())],
                        columns=["class", "split", "videos"])


def confusion_html(matrix: list[list[int]], classes: list[str], title: str = "") -> str:
    """A confusion matrix as an HTML table: rows are the true class, columns the prediction."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in classes)
    body = []
    for c, row in zip(classes, matrix):
        total = sum(row) or 1
        cells = []
        for j, n in enumerate(row):
            alpha = n / total
            color = "22,163,74" if classes[j] == c else "220,38,38"
            cells.append(f'<td style="background: rgba({color},{alpha:.2f})">{n}</td>')
        body.append(f"<tr><th>{html.escape(c)}</th>{''.join(cells)}</tr>")
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    return (f'<table class="rbft-confusion">{caption}<thead><tr><th>true \\ predicted</th>{head}</tr>'
            f"</thead><tbody>{''.join(body)}</tbody></table>")


def progress_html(label: str, done: int, total: int, detail: str = "", state: str = "running") -> str:
    share = done / total if total else 0.0
    return (f'<div class="rbft-progress rbft-{state}"><div class="rbft-progress-label">'
            f"{html.escape(label)} <b>{done}/{total}</b> {html.escape(detail)}</div>"
            f'<div class="rbft-bar"><div style="width:{share * 100:.0f}%"></div></div></div>')


def length_histogram(per_class: dict[str, dict], bins: int = 12):
    """Rationale lengths (words) per class, one matplotlib figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3))
    lengths = [row["lengths"] for row in per_class.values()]
    if any(lengths):
        ax.hist(lengths, bins=bins, label=list(per_class), stacked=True)
        ax.legend(fontsize=8)
    ax.set_xlabel("words per rationale")
    ax.set_ylabel("rationales")
    fig.tight_layout()
    plt.close(fig)
    return fig


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"ETA {seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"ETA {seconds} s"
