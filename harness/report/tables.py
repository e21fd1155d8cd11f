"""The leaderboard's sections below the headline: train × eval matrices, what else is encoded,
every metric on every task, notes and failed cells, and the reproducibility block."""

from __future__ import annotations

import hashlib
import math
import re
import statistics
import unicodedata
from collections import defaultdict
from pathlib import Path

from tabulate import tabulate

from harness.provenance import PLUGIN
from harness.report.chance import Chance, is_accuracy, scored, test_size
from harness.report.figures import Figures
from harness.report.rows import Row, encoder_label
from harness.store.records import ResultsReader

#: what a plugin-provided string's characters become on the page (``md``)
ESCAPES = {"\\": "\\\\", "|": "\\|", "&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "&#96;",
           "[": "\\[", "]": "\\]"}
#: the bidirectional-text controls, which reorder what a reader sees
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: WORD JOINER: invisible, it breaks GFM's autolinks, which no markdown escape does
JOINER = "\u2060"
#: the autolinks of GFM's extension, where a word joiner goes: ``scheme://`` (``:`` + joiner),
#: ``www.`` (``www`` + joiner) and an e-mail address (joiner + ``@``, wherever a domain-like
#: run with a dot or another ``@`` follows, as cmark-gfm's rule reads; ``mailto:``, ``xmpp:``)
AUTOLINKS = re.compile(r"(?<=:)(?=//)|(?i:(?<=www)(?=\.))|(?=@[A-Za-z0-9._/@-]*[.@])")


def md(text: object) -> str:
    """A plugin-provided string (a name or label, a parameter value, a note, an error
    message, a family) as inline markdown text, safe in a table cell, a heading, a list item
    and a code span (which shows its backslashes and entities as typed). Control characters
    and every run of whitespace become one space, so it stays on its line: it cannot start a
    heading, a list item or a table row; ``|``, ``\\``, ``[`` and ``]`` are escaped with a
    backslash, so it cannot add a cell or make a link, an image or a task-list box; ``&``,
    ``<``, ``>`` and the backtick become HTML entities, so HTML shows as text and a code span
    cannot be closed; an invisible word joiner (U+2060) goes into ``://`` and ``www.`` and
    before an e-mail address's ``@``, so GitHub does not autolink them (a backslash does not
    stop an autolink). Every plugin string reaches the page through here, once."""
    s = "".join(ESCAPES.get(c) or (" " if c in BIDI or unicodedata.category(c) == "Cc" else c)
                for c in str(text))
    return AUTOLINKS.sub(JOINER, " ".join(s.split()))


def arrow(metric: str, higher: bool) -> str:
    return f"{metric} {'↑' if higher else '↓'}"


def fmt(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    mean = statistics.fmean(finite)
    if len(finite) > 1:
        return f"{mean:.3f} ± {statistics.stdev(finite):.3f}"
    return f"{mean:.3f}"


def _table(body: list[list[str]], header: list[str]) -> str:
    return tabulate(body, header, tablefmt="github", disable_numparse=True)


def matrices(fig: Figures) -> list[str]:
    groups: dict[tuple[str, str, str], dict[str, Row]] = {}
    for row in fig.rows:
        if row.train_task is not None and row.encoder in fig.bases:
            groups.setdefault((row.encoder, row.adapter, row.merge if row.merged else ""),
                              {})[row.train_task] = row
    if not groups:
        return []
    direction = "" if fig.direction(fig.primary) > 0 else \
        " (lower is better, so a positive change is base − variant)"
    out = ["## Train task × eval task", "",
           f"Change in `{md(fig.primary)}` against the base model{direction}, for each train "
           "task (rows) on each eval task (columns). The diagonal is the gain; the rest is what "
           "training on one task did to the others (adapter dominance shows as a bright "
           "diagonal and negative elsewhere). † an eval task whose labels depend on the train "
           "task's (see *Task design*): not counted off-task.", ""]
    for (encoder, adapter, merge), by_task in groups.items():
        base = fig.bases[encoder]
        name = f"{encoder} + {adapter}" + (f" + {merge}" if merge else "")
        out += [f"### {md(name)}", ""]
        body = []
        for train in sorted(by_task):
            cells = []
            for t in fig.tasks:
                d = fig.change(by_task[train], base, t)
                text = f"{d:+.3f}" if math.isfinite(d) else "n/a"
                dagger = "†" if t in fig.left_out(train) else ""
                cells.append(f"**{text}**" if t == train else text + dagger)
            body.append([md(train)] + cells)
        out += [_table(body, ["train \\ eval"] + [md(t) for t in fig.tasks]), ""]
    return out


def encoded(rows: list[Row], tasks: list[str]) -> list[str]:
    with_data = [r for r in rows if r.encoded]
    if not with_data:
        return []
    names = [t for t in tasks if any(t in r.encoded for r in with_data)]
    names += sorted({n for r in with_data for n in r.encoded} - set(names))
    out = ["## What else is encoded", "",
           "Adjusted mutual information between k-means clusters of each variant's embeddings "
           "of the whole evaluation pool (k = the attribute's number of values) and every "
           "task's labels (where the task applies) or a nuisance attribute of the sequence "
           "(`length`, `magnitude`: tercile of its largest element, `leading digit` of its "
           "first element). 0 = chance, 1 = the clusters are the attribute.", ""]
    by_encoder: dict[str, list[Row]] = defaultdict(list)
    for row in with_data:
        by_encoder[row.encoder].append(row)
    for encoder, members in by_encoder.items():
        out += [f"### {md(encoder)}", ""]
        body = [[md(r.name)] + [f"{r.encoded[n]:.2f}" if math.isfinite(r.encoded.get(n, math.nan))
                                else "n/a" for n in names] for r in members]
        out += [_table(body, ["variant"] + [md(n) for n in names]), ""]
    return out


def every_metric(rows: list[Row], tasks: list[str], metrics: list[str],
                 higher: dict[str, bool], chance: dict[str, Chance] | None = None) -> list[str]:
    """Every metric's table; an accuracy's (``chance.is_accuracy``) opens with its chance level
    and the eval rows of each task, where ``chance`` has them."""
    chance = chance or {}
    out = ["## Every metric on every eval task", "",
           "`a ± b`: the mean ± standard deviation over seeds.", ""]
    for m in metrics:
        out += [f"### {md(arrow(m, higher.get(m, True)))}", ""]
        body = [[md(row.name)] + [fmt(row.values.get((t, m), [])) for t in tasks]
                for row in rows]
        if is_accuracy(m) and any(t in chance for t in tasks):
            out += ["An accuracy: *chance* is the majority share of each task's eval sample "
                    "(1/k where its k classes are balanced), from the stored labels; *eval rows*: "
                    "the size of that sample and, where its stored per-row values score fewer "
                    "rows, how many (the metric does not declare whether each row is predicted "
                    "while held out).", ""]
            body = [["*chance*"] + [chance[t].text() if t in chance else "n/a" for t in tasks],
                    ["*eval rows*"] + [test_size(chance.get(t), scored(rows, t, m))
                                       for t in tasks]] + body
        out += [_table(body, ["variant"] + [md(t) for t in tasks]), ""]
    return out


def notes(store: ResultsReader, profile: str, seed: int, only: set[str] | None) -> list[str]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for s in store.scores(profile, seed):
        if s.note and (only is None or s.variant in only):
            counts[(s.metric, s.note)] += 1
    variants = store.variants()
    failures = [f for f in store.failures(profile, seed) if f.variant in variants
                and (only is None or f.variant in only)]
    failures.sort(key=lambda f: (encoder_label(variants[f.variant]), variants[f.variant].adapter,
                                 variants[f.variant].train_task or "",
                                 variants[f.variant].merge, f.task))
    out: list[str] = []
    if counts:
        out += ["## Notes", ""] + [f"- `{md(m)}` n/a in {c} cells: {md(t)}"
                                   for (m, t), c in sorted(counts.items())] + [""]
    if failures:
        out += ["## Failed cells", ""]
        for f in failures:
            v = variants[f.variant]
            first = f.error.splitlines()[0] if f.error else ""
            # one md() over the adapter@task: a task named like a domain ("evil.example")
            # after the page's own "@" would be an e-mail autolink
            trained = f"{v.adapter}@{v.train_task}" if v.train_task is not None else v.adapter
            out.append(f"- {md(encoder_label(v))} {md(trained)} "
                       f"{md(v.merge)} on {md(f.task)}: {md(first)}")
        out.append("")
    return out


def source_hash() -> str:
    """A hash of the harness's own source (core, built-in plugins and tasks)."""
    import harness
    import harness.plugins
    import harness.tasks

    # plugins/ and tasks/ sit beside harness/ in a clone and inside it in a wheel: each file is
    # hashed once, under its package, whichever the layout
    files: dict[str, Path] = {}
    seen: set[Path] = set()
    for package in (harness.plugins, harness.tasks, harness):
        root = Path(str(package.__file__)).parent
        for path in sorted(root.rglob("*.py")):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                files[f"{package.__name__}/{path.relative_to(root)}"] = path
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].read_bytes())
    return digest.hexdigest()[:16]


def without_precision(label: str) -> str:
    """An encoder's row label without its ``precision=`` parameter (the block states it)."""
    name, _, params = label.partition(":")
    kept = [p for p in params.split(",") if p and not p.startswith("precision=")]
    return name + (":" + ",".join(kept) if kept else "")


def reproducibility(store: ResultsReader, profile: str, seed: int, rows: list[Row]
                    ) -> list[str]:
    latest = store.latest_run(profile)
    stored = latest.packages if latest else {}
    packages = {k: v for k, v in stored.items() if not k.startswith(PLUGIN)}
    plugins = {k.removeprefix(PLUGIN): v for k, v in stored.items() if k.startswith(PLUGIN)}
    seeds = sorted({s for r in rows for s in r.seeds})
    variants = store.variants()
    formats: dict[str, set[str]] = {}  # encoder -> the number formats its rows ran in
    for r in rows:
        for key in r.variants:
            if key in variants:
                formats.setdefault(without_precision(r.encoder), set()).add(
                    variants[key].precision)
    return ["## Reproducibility", "",
            f"- profile `{md(profile)}`, evaluation seed {seed}, training seeds "
            f"{', '.join(map(str, seeds)) or '—'}",
            "- precision (the number format of each encoder's forward passes, settled for the "
            "machine before any key is made; part of every key): " + (", ".join(
                f"{md(enc)} {'/'.join(sorted(md(f) for f in fmts))}"
                for enc, fmts in sorted(formats.items())) or "—"),
            f"- harness source hash `{source_hash()}` (core, built-in plugins and tasks)",
            "- packages: " + ", ".join(f"{md(k)} {md(v)}" for k, v in sorted(packages.items())),
            *(["- plugins that supplied a component of the latest run: " + ", ".join(
                f"{md(k)} {md(v)}" for k, v in sorted(plugins.items()))] if plugins else []),
            "- regenerate: `make run` (or `harness run --all`), then compare with `git diff "
            "leaderboard/`",
            "- the git commit and wall time of each run are in the store's `runs` table; they "
            "differ between otherwise identical runs, so this page, which must come out byte for "
            "byte the same, leaves them out", ""]
