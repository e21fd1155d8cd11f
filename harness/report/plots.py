"""PNG figures beside the leaderboard (matplotlib, Agg, no timestamps: the same store gives the
same bytes with the same matplotlib).

- ``slerp-sweep.png``: on-task gain, off-task change and CKA to the base as the parameter of
  every merge that ``interpolates`` goes from 0 (the base) to 1 (the unmerged model), for every
  encoder and adapter (mean over train tasks), drawn when one of those merges names a
  ``control`` (SLERP and its linear control). The endpoints are the base and the unmerged rows;
  every variant with only that parameter changed (``slerp:t=...``) adds a point.
- ``train-eval.png``: the train task × eval task change against the base, one heatmap per
  encoder and adapter (unmerged).
- ``projection.png``: a 2-D PCA projection of one eval task's embeddings, coloured by its
  labels, for the base, the unmerged model and the merges ``paper.PROJECTED`` names, preferring
  an LLM with a parameter-efficient adapter.

Every figure carries ``MARK`` (a PNG text chunk, ``Software: numgeo-harness``), so that a later
render knows the file is the harness's to write over (``marked``).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.report import paper
from harness.report.figures import Figures
from harness.report.rows import Row
from harness.store.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: (variant key, task name) -> (embeddings, labels) of that task's eval sample, or None
Loader = Callable[[str, str], "tuple[np.ndarray, np.ndarray] | None"]


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def plain(text: object) -> str:
    """A plugin-provided string as matplotlib text: ``$`` escaped (a pair of them would be
    parsed as mathtext, and a bad expression fails the whole render), whitespace and control
    characters one space."""
    return " ".join("".join(" " if unicodedata.category(c) == "Cc" else c
                            for c in str(text)).split()).replace("$", r"\$")


#: the PNG text chunk (keyword, text) that marks a figure as written by the harness
MARK = ("Software", "numgeo-harness")
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def marked(path: Path) -> bool:
    """Whether ``path`` is a PNG that carries ``MARK`` (read chunk by chunk up to the image
    data, where matplotlib puts it; a few hundred bytes)."""
    chunk = f"{MARK[0]}\0{MARK[1]}".encode("latin-1")
    if not path.is_file():  # nor open a FIFO, which would wait for a writer
        return False
    try:
        with path.open("rb") as f:
            if f.read(8) != _SIGNATURE:
                return False
            for _ in range(64):
                head = f.read(8)
                length, kind = int.from_bytes(head[:4], "big"), head[4:]
                if len(head) < 8 or kind in (b"IDAT", b"IEND"):
                    return False
                ours = kind == b"tEXt" and length == len(chunk)
                if ours and f.read(length) == chunk:
                    return True
                f.seek(4 if ours else length + 4, 1)  # the rest of the chunk, its CRC
    except OSError:
        return False
    return False


def _save(fig: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    # ``MARK`` replaces matplotlib's own Software entry, which names its version
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90,
                                               metadata=dict([MARK])))
    plt.close(fig)


def _sweep(fig_data: Figures) -> Figure | None:
    import matplotlib.pyplot as plt

    curves: dict[tuple[str, str, str], dict[float, list[tuple[float, float, float]]]] = {}
    controlled: dict[str, str] = {}  # merge name -> its control
    for row in fig_data.rows:
        t = row.roles.get("t")
        if row.train_task is None or not row.merged or t is None:
            continue
        if fig_data.bases.get(row.encoder) is None:
            continue
        if row.roles.get("control"):
            controlled[row.merge_kind] = str(row.roles["control"])
        gain, off = fig_data.gain(row), fig_data.off_change(row)
        point = (gain.value if gain else math.nan, off.value if off else math.nan,
                 row.cka[0] if row.cka else math.nan)
        curves.setdefault((row.encoder, row.adapter, row.merge_kind), {}).setdefault(
            float(t), []).append(point)
    if not any(k[2] in controlled for k in curves):
        return None
    for (encoder, adapter, _kind), points in curves.items():  # endpoints: base and unmerged
        ends = [r for r in fig_data.rows if r.encoder == encoder and r.adapter == adapter
                and not r.merged and r.train_task is not None]
        for r in ends:
            gain, off = fig_data.gain(r), fig_data.off_change(r)
            points.setdefault(1.0, []).append((gain.value if gain else math.nan,
                                               off.value if off else math.nan,
                                               r.cka[0] if r.cka else math.nan))
            points.setdefault(0.0, []).append((0.0, 0.0, 1.0))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    titles = (plain(f"on-task gain ({fig_data.primary})"),
              plain(f"off-task change ({fig_data.primary})"),
              "CKA to the base")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    pairs = sorted({(e, a) for e, a, _ in curves})
    for (encoder, adapter, kind), points in sorted(curves.items()):
        ts = sorted(points)
        colour = colours[pairs.index((encoder, adapter)) % len(colours)]
        for i, ax in enumerate(axes):
            ys = [_mean([p[i] for p in points[t]]) for t in ts]
            ax.plot(ts, ys, "-o" if kind in controlled else "--s", color=colour, markersize=4,
                    label=plain(f"{encoder} + {adapter}, {kind}"))
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("t (0 = base, 1 = unmerged)")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def sweep_title(fig_data: Figures) -> str:
    """E.g. "SLERP t-sweep against the linear control"."""
    pairs = sorted({(r.merge_kind, str(r.roles["control"])) for r in fig_data.rows
                    if r.merged and r.roles.get("control") and r.roles.get("t") is not None})
    subjects = " / ".join(s.upper() for s, _ in pairs)
    controls = " / ".join(sorted({c for _, c in pairs}))
    return f"{subjects} t-sweep against the {controls} control"


def _heatmaps(fig_data: Figures) -> Figure | None:
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str], dict[str, Row]] = {}
    for row in fig_data.rows:
        if row.train_task is not None and not row.merged and row.encoder in fig_data.bases:
            groups.setdefault((row.encoder, row.adapter), {})[row.train_task] = row
    if not groups:
        return None
    tasks = fig_data.tasks
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, ((encoder, adapter), by_task) in zip(axes[0], sorted(groups.items()), strict=True):
        base = fig_data.bases[encoder]
        trains = sorted(by_task)
        grid = np.array([[fig_data.change(by_task[tr], base, t) for t in tasks]
                         for tr in trains])
        bound = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
        image = ax.imshow(grid, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
        ax.set_xticks(range(len(tasks)), [plain(t) for t in tasks], rotation=60, ha="right",
                      fontsize=7)
        ax.set_yticks(range(len(trains)), [plain(t) for t in trains], fontsize=7)
        ax.set_title(plain(f"{encoder} + {adapter}"), fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(plain(f"change in {fig_data.primary} against the base (rows: train task)"),
                 fontsize=10)
    fig.tight_layout()
    return fig


def _projection(fig_data: Figures, load: Loader) -> Figure | None:
    import matplotlib.pyplot as plt

    candidates = sorted((r for r in fig_data.rows if not r.merged and r.train_task),
                        key=lambda r: (not (r.family == "llm" and r.parameter_efficient),
                                       r.encoder, r.adapter, r.train_task or ""))
    for lora in candidates:
        same = {r.merge: r for r in fig_data.rows if r.merged and
                (r.encoder, r.adapter, r.train_task) == (lora.encoder, lora.adapter,
                                                         lora.train_task)}
        panels = [("base", fig_data.bases.get(lora.encoder)), ("unmerged", lora),
                  *((name, same.get(name)) for name in paper.PROJECTED)]
        data = []
        for title, row in panels:
            loaded = load(sorted(row.variants)[0], str(lora.train_task)) if row else None
            if loaded is not None:
                data.append((title, *loaded))
        if len(data) < 2 or any(X.shape[1] < 2 for _, X, _ in data):  # no 2-D projection
            continue
        fig, axes = plt.subplots(1, len(data), figsize=(3.3 * len(data), 3.3), squeeze=False)
        for ax, (title, X, y) in zip(axes[0], data, strict=True):
            Z = X - X.mean(axis=0)
            _, _, vt = np.linalg.svd(Z, full_matrices=False)
            P = Z @ vt[:2].T
            P = P * np.sign(P[np.abs(P).argmax(axis=0), range(2)])  # a fixed orientation
            ax.scatter(P[:, 0], P[:, 1], c=y, cmap="tab10", s=9, vmin=0, vmax=9)
            ax.set_title(plain(title.replace(":", "\n", 1)), fontsize=9)  # a long label wraps
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(plain(f"{lora.encoder} + {lora.adapter}@{lora.train_task}: PCA of the "
                           f"{lora.train_task} eval sample, coloured by its labels"), fontsize=9)
        fig.tight_layout()
        return fig
    return None


def write_plots(fig_data: Figures, load: Loader | None, folder: Path,
                writable: Callable[[str], bool] = lambda name: True
                ) -> tuple[list[tuple[str, str]], list[str]]:
    """Write the figures that this store has data for, each where ``writable(file name)``;
    (title, file name) of each written, and the file names of those drawn but not written."""
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")
    made, withheld = [], []
    for name, title, draw in (
            ("slerp-sweep.png", lambda: sweep_title(fig_data), lambda: _sweep(fig_data)),
            ("train-eval.png", lambda: "train task × eval task", lambda: _heatmaps(fig_data)),
            ("projection.png", lambda: "2-D projection of the embeddings",
             lambda: _projection(fig_data, load) if load is not None else None)):
        fig = draw()
        if fig is None:
            continue
        if writable(name):
            _save(fig, folder / name)
            made.append((title(), name))
        else:
            plt.close(fig)
            withheld.append(name)
    return made, withheld
