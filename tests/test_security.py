"""Security: no pickle (weights are safetensors, ``.npy`` is read with ``allow_pickle=False``,
a pickled model checkpoint is read as tensors only), a model's own code runs only on the user's
explicit ``trust_remote_code=true``, strings from plugins cannot break or inject into the
leaderboard's markdown nor become links or images there, nor start a formula in a CSV export's
cell, and every file a run writes stays inside its store, its leaderboard
folder and the model cache."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("harness", "plugins", "tasks", "bench")
                 for p in (ROOT / folder).rglob("*.py"))
SMOKE = ["--profile", "smoke", "--device", "cpu"]


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == name]


def _keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "expression"
    return "missing"


def test_the_code_never_unpickles() -> None:
    assert len(SOURCES) > 20
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal",
                            "cloudpickle"} & {n.split(".")[0] for n in names}, path
        for call in _calls(tree, "load"):
            func = call.func
            owner = func.value.id if isinstance(func, ast.Attribute) and \
                isinstance(func.value, ast.Name) else ""
            if owner == "torch":
                assert _keyword(call, "weights_only") is True, f"{path}:{call.lineno}"
            if owner in ("np", "numpy"):
                assert _keyword(call, "allow_pickle") is False, f"{path}:{call.lineno}"
        for call in _calls(tree, "from_pretrained"):  # remote code only when a user asks
            assert _keyword(call, "trust_remote_code") is not True, f"{path}:{call.lineno}"


def _tiny_bert_folder(folder: Path) -> None:
    from transformers import BertConfig, BertModel

    try:
        from tests.test_hf import _tokenizer
    except ModuleNotFoundError:  # `pytest` run as a script puts tests/, not the root, on the path
        from test_hf import _tokenizer  # type: ignore[no-redef]

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=16, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=4, intermediate_size=64)).save_pretrained(folder)
    _tokenizer().save_pretrained(folder)


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _run_hf(tmp_path: Path, spec: str) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", "--encoder", spec, "--adapter", "none", "--task", "parity",
                     "--metric", "silhouette", *SMOKE, "--store", str(tmp_path / "S"),
                     "--out", str(tmp_path / "o.md")])
    return code, err.getvalue()


def test_pickled_checkpoint_with_code_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder, marker = tmp_path / "model", tmp_path / "PAYLOAD-RAN"
    _tiny_bert_folder(folder)
    tensors = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save({**tensors, "payload": _Payload(marker)}, folder / "pytorch_model.bin")
    code, err = _run_hf(tmp_path, f"hf:model={folder}")
    assert not marker.exists()
    assert code == 1 and "Traceback" not in err, err
    assert "holds more than tensors and the harness loads weights only" in err
    # the same checkpoint without the payload loads (tensors only are fine)
    torch.save(tensors, folder / "pytorch_model.bin")
    code, err = _run_hf(tmp_path, f"hf:model={folder}")
    assert code == 0, err


def test_model_code_runs_only_when_asked(tmp_path: Path) -> None:
    folder, marker = tmp_path / "model", tmp_path / "MODEL-CODE-RAN"
    _tiny_bert_folder(folder)
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config.replace(
        '"model_type": "bert"', '"model_type": "own-bert", "auto_map": {"AutoConfig": '
        '"own_code.OwnConfig", "AutoModel": "own_code.OwnModel"}'))
    (folder / "own_code.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
        "from transformers import BertConfig, BertModel\n"
        "class OwnConfig(BertConfig):\n    model_type = 'own-bert'\n"
        "class OwnModel(BertModel):\n    config_class = OwnConfig\n")
    code, err = _run_hf(tmp_path, f"hf:model={folder}")
    assert code == 2 and "Traceback" not in err, err
    assert "needs its own code to load; pass trust_remote_code=true" in err
    assert not marker.exists()
    code, err = _run_hf(tmp_path, f"hf:model={folder},trust_remote_code=true")
    assert code == 0, err
    assert marker.exists()  # asked for: it ran


INJECT = "x | y\n## injected heading\n| fake | row |"
#: HTML and a code span's closing backtick; no comma, so it passes as a parameter value too
HTML = "<script>alert(1)</script> <img src=x onerror=alert(2)> `tick &amp; $\\frac{$\r\t\x1b\u202e"
BAD = INJECT + " " + HTML

NASTY = f"""
from dataclasses import dataclass, field
from typing import ClassVar
from harness import hookimpl
from harness.api import Metric, MetricUndefined
from harness.plugins.adapters import Full
from harness.plugins.scratch import Scratch
from harness.tasks.elementwise import Parity

@dataclass(frozen=True)
class Nasty(Metric):
    \"\"\"Its note carries markdown: {HTML!r}\"\"\"
    name: ClassVar[str] = "nasty"
    higher_is_better: ClassVar[bool] = True
    tag: str = field(default="", metadata={{"help": {HTML!r}}})
    def score(self, X, y, rng):
        raise MetricUndefined({INJECT!r} + " " + self.tag)

@dataclass(frozen=True)
class Exploding(Metric):
    \"\"\"Its error carries markdown.\"\"\"
    name: ClassVar[str] = "exploding"
    higher_is_better: ClassVar[bool] = True
    def score(self, X, y, rng):
        raise RuntimeError({BAD!r})

@dataclass(frozen=True)
class Tagged(Scratch):
    \"\"\"An encoder whose label carries a string parameter: {HTML!r}\"\"\"
    name: ClassVar[str] = "tagged"
    from_scratch: ClassVar[bool] = False  # its family rows name the adapter's kind
    tag: str = ""

@dataclass(frozen=True)
class Odd(Full):
    \"\"\"An adapter whose kind, shown in its family rows, carries markdown: {HTML!r}\"\"\"
    name: ClassVar[str] = "odd"
    kind: ClassVar[str] = {BAD!r}

@dataclass(frozen=True)
class OddParity(Parity):
    \"\"\"Parity with markdown in its class names and docstring: {HTML!r}\"\"\"
    name: ClassVar[str] = "odd-parity"
    classes: ClassVar[tuple[str, ...]] = ({HTML!r}, {INJECT!r})

@hookimpl
def register_metrics(register):
    register(Nasty)
    register(Exploding)

@hookimpl
def register_encoders(register):
    register(Tagged)

@hookimpl
def register_adapters(register):
    register(Odd)

@hookimpl
def register_tasks(register):
    register(OddParity)
"""


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def assert_no_injection(text: str) -> None:
    """No plugin string made a line of its own, a tag, a cell or an open code span."""
    lines = text.splitlines()
    assert not any(line.startswith(("## injected", "| fake")) for line in lines)
    for line in lines:
        assert "<script" not in line.lower() and "<img" not in line.lower(), line
        assert line.count("`") % 2 == 0, line  # every code span closed on its line
        assert not {"\r", "\t", "\x1b", "\u202e"} & set(line), line
    table: list[int] = []
    for line in [*lines, ""]:  # every row of a table has its header's number of cells
        if line.startswith("|"):
            table.append(_unescaped_pipes(line))
        elif table:
            assert len(set(table)) == 1, table
            table = []


def test_plugin_strings_cannot_inject_markdown(tmp_path: Path) -> None:
    """Through a run: a metric's MetricUndefined reason (the notes), an exception's message
    (the failed cells), an adapter's kind (the family column), string parameter values in an
    encoder's and a metric's labels (headings, table cells, code spans), a task's class names
    and docstrings (not shown)."""
    import contextlib
    import io

    plugin = tmp_path / "nasty.py"
    plugin.write_text(NASTY)
    out = tmp_path / "board.md"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        for metric in (f"nasty:tag={HTML}", "exploding"):
            main(["run", "--plugin", str(plugin), "--encoder", f"tagged:tag={BAD}",
                  "--adapter", "odd", "--task", "parity", "--task", "odd-parity",
                  "--metric", metric, "--metric", "silhouette", *SMOKE,
                  "--store", str(tmp_path / "S"), "--out", str(out)])
    text = out.read_text()
    shown = "x \\| y ## injected heading \\| fake \\| row \\|"
    html = ("&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt; &#96;tick "
            "&amp;amp; $\\\\frac{$")  # and $...$, not parsed as mathtext in the figures
    assert f"cells: {shown} {html}" in text  # the note, shown, escaped
    assert f"### tagged:tag={shown} {html}" in text  # a heading
    assert f"| non-LLM fine-tuned ({shown} {html} ) " in text  # a family
    assert f"### nasty:tag={html} ↑" in text
    assert f"on odd-parity: RuntimeError: {shown} {html}" in text  # the failed cells
    assert_no_injection(text)


def test_claims_and_task_design_escape_plugin_strings() -> None:
    """The lines no smoke run reaches: the claims (encoder labels, families, tasks, the
    primary metric, a merge's control), the headline's header and the task audit's table."""
    from harness.audit import Audit, TaskAudit
    from harness.report import design, leaderboard, paper, tables
    from harness.report.figures import Figures
    from harness.report.rows import Row

    tasks, primary = ["parity", f"odd:{BAD}"], f"silhouette:tag={BAD}"
    metrics = ["probe-accuracy", primary]

    def row(encoder: str, family: str, train: str | None = None, merge: str = "none",
            **roles: object) -> Row:
        r = Row(BAD, encoder, "lora" if train else "none", train, merge, family,
                trained=train is not None, merged=merge != "none",
                roles={"parameter_efficient": True, "control": BAD, **roles}, seeds=[0])
        r.values = {(t, m): [0.5] for t in tasks for m in metrics}
        r.cka, r.encoded = (0.9, 0.8, 1.0), {BAD: 0.5}
        return r

    llm, other = f"llm:tag={BAD}", f"enc:tag={BAD}"
    rows = [row(llm, "llm"), row(other, "non-llm"), row(llm, "llm", tasks[1]),
            row(llm, "llm", tasks[1], "slerp"), row(llm, "llm", tasks[1], "soup"),
            row(llm, "llm", tasks[1], paper.STAGE_SLERP),
            row(llm, "llm", tasks[1], BAD), row(other, "non-llm", tasks[1])]
    fig = Figures(rows, tasks, metrics, 0, primary, {}, {t: [u for u in tasks if u != t]
                                                         for t in tasks},
                  {(a, b): 0.5 for a in tasks for b in tasks if a != b})
    audit = Audit([TaskAudit(tasks[1], 2, 0, {}, [], error=BAD)], {}, {})
    lines = leaderboard._claims(paper.claims(fig, set(tasks))) + \
        leaderboard._headline(fig, {}) + design.markdown(audit) + tables.matrices(fig) + \
        tables.encoded(rows, tasks) + tables.every_metric(rows, tasks, metrics, {})
    text = "\n".join(lines)
    assert "not tested" not in text  # every claim has its lines
    assert "&lt;script&gt;" in text and "odd:x \\| y" in text
    assert_no_injection(text)


def test_a_run_writes_only_inside_its_folders(tmp_path: Path) -> None:
    """Store, leaderboard folder and (for the built-in pretrained models) $HARNESS_CACHE;
    nothing in the working directory, $HOME or elsewhere under the test's folder."""
    folders = {name: tmp_path / name for name in ("cwd", "home", "cache", "tmpdir")}
    for folder in folders.values():
        folder.mkdir()
    env = {**os.environ, "HOME": str(folders["home"]), "HARNESS_CACHE": str(folders["cache"]),
           "TMPDIR": str(folders["tmpdir"]), "PYTHONPATH": str(ROOT)}
    env.pop("MPLCONFIGDIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--encoder", "scratch",
         "--adapter", "full", "--merge", "slerp:t=0.2,0.8", "--task", "parity",
         "--task", "primality", *SMOKE, "--store", str(tmp_path / "S"),
         "--out", str(tmp_path / "board" / "README.md")],
        cwd=folders["cwd"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    outside = [p for p in written if not p.startswith(("S/", "board/"))
               and not p.startswith("home/.cache/matplotlib/")  # matplotlib's font cache
               and not p.startswith("home/.config/matplotlib/")]
    assert outside == [], outside
    assert "board/README.md" in written and "S/results.sqlite" in written


def test_atomic_writes_get_the_umask_s_mode_not_0600(tmp_path: Path) -> None:
    import stat

    from harness.store.files import _UMASK, atomic_write_text

    path = tmp_path / "board.md"
    atomic_write_text(path, "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_UMASK
    plain = tmp_path / "plain.md"
    plain.write_text("x")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


# ------------------------------------------------------------------ links, images, CSV formulas

#: markdown images and links, GFM's autolinks (``scheme://``, ``www.``, e-mail addresses,
#: ``mailto:``/``xmpp:``) and a task-list box; no comma, so it passes as a parameter value too
LINK = ("![i](//evil.example/p.png) [l](//evil.example) https://evil.example/a "
        "HTTP://evil.example www.evil.example a@evil.example mailto:b@evil.example "
        "xmpp:c@evil.example/x [ ] box")
#: component names (no ``:,= |`<>``, no space): an image, a link, a host, an address, a formula
IMAGE, ANCHOR, HOST, MAIL, FORMULA = ("![i](//evil.example/p.png)", "[l](//evil.example)",
                                      "www.evil.example", "u@evil.example", "@SUM(1+1)")

LINKY = f"""
from dataclasses import dataclass
from typing import ClassVar
from harness import hookimpl
from harness.api import Merged, Metric, MetricUndefined, PooledMerge
from harness.plugins.adapters import Full
from harness.plugins.scratch import Scratch
from harness.tasks.elementwise import Parity

@dataclass(frozen=True)
class Linked(Scratch):
    \"\"\"An encoder whose label carries a string parameter.\"\"\"
    name: ClassVar[str] = {HOST!r}
    tag: str = ""

@dataclass(frozen=True)
class Pictured(Full):
    \"\"\"An adapter named like an image.\"\"\"
    name: ClassVar[str] = {IMAGE!r}

@dataclass(frozen=True)
class Anchored(PooledMerge):
    \"\"\"A merge named like a link whose statistic's name carries links.\"\"\"
    name: ClassVar[str] = {ANCHOR!r}
    def merge(self, base, checkpoints, score=None):
        return Merged(dict(checkpoints[0]), {{{LINK!r}: 1.0}})

@dataclass(frozen=True)
class Mailed(Parity):
    \"\"\"Parity named like an e-mail address.\"\"\"
    name: ClassVar[str] = {MAIL!r}

@dataclass(frozen=True)
class Undefined(Metric):
    \"\"\"Never defined: its reason carries links.\"\"\"
    name: ClassVar[str] = "undefined"
    higher_is_better: ClassVar[bool] = True
    tag: str = ""
    def score(self, X, y, rng):
        raise MetricUndefined("see " + self.tag)

@dataclass(frozen=True)
class Formula(Metric):
    \"\"\"A negative number under a name a spreadsheet would read as a formula.\"\"\"
    name: ClassVar[str] = {FORMULA!r}
    higher_is_better: ClassVar[bool] = False
    def score(self, X, y, rng):
        return -0.25

@dataclass(frozen=True)
class Failing(Metric):
    \"\"\"Its error carries links.\"\"\"
    name: ClassVar[str] = "failing"
    higher_is_better: ClassVar[bool] = True
    def score(self, X, y, rng):
        raise RuntimeError({LINK!r})

@hookimpl
def register_encoders(register):
    register(Linked)

@hookimpl
def register_adapters(register):
    register(Pictured)

@hookimpl
def register_merges(register):
    register(Anchored)

@hookimpl
def register_tasks(register):
    register(Mailed)

@hookimpl
def register_metrics(register):
    register(Undefined)
    register(Formula)
    register(Failing)
"""

# What GFM (cmark-gfm, as GitHub renders) makes a link or an image of, checked on the markdown
# text. Verified with cmarkgfm 2025.10.22 (`github_flavored_markdown_to_html`, autolink
# extension on) in a table cell, a heading, a list item and a code span: `\[` and `\]` never open
# or close a link, an image or a task-list box (and `!\[...\](...)` is no image); a word joiner
# U+2060 inside `://` (`:\u2060//`), `www.` (`www\u2060.`) and before `@` stops every autolink.
# A backslash or an entity does NOT stop an e-mail autolink: `a\@b.co`, `a&#64;b.co` and
# `a@b\.co` are still linked (the extension reads the text after escapes are resolved and
# adjacent text merged), so an invisible word joiner is what keeps the text readable and unlinked.
# A page that puts its own "@" before a plugin string ("full@" + md("evil.example")) is still
# linked: md() goes over the whole "adapter@task" instead.
_LINK_RULES = [
    (r"(?<!\\)(?:\\\\)*[\[\]]", "an unescaped [ or ]"),
    (r"(?i)[a-z]://", "a scheme:// autolink"),
    (r"(?i)(?:^|[^a-z0-9])www\.", "a www. autolink"),
    (r"[A-Za-z0-9.+_-]@[A-Za-z0-9._/@-]*[.@]", "an e-mail autolink"),
]


#: on a whole page, whose own text has brackets (``v [lo, hi]``): no inline or reference link
#: or image, no link reference definition and no task-list box
_PAGE_RULES = [
    (r"(?<!\\)(?:\\\\)*\][(\[]", "a link or an image"),
    (r"^ {0,3}\[[^\]]*\]:", "a link reference definition"),
    (r"^\s*(?:[-*+]|\d+[.)])\s+\[[ xX]\]", "a task-list box"),
    *_LINK_RULES[1:],
]


def assert_no_link(text: str, rules: list[tuple[str, str]] = _PAGE_RULES) -> None:
    """No markdown link or image and no GFM autolink can come from ``text`` (the page's links
    to its own figures are left out)."""
    for line in text.splitlines():
        if re.fullmatch(r"!\[[^\[\]]*\]\((slerp-sweep|train-eval|projection)\.png\)", line):
            continue
        for pattern, what in rules:
            assert not re.search(pattern, line), f"{what}: {line}"


def shown(markdown: str) -> str:
    """What a reader sees of ``md``'s text (backslash escapes and word joiners resolved; the
    HTML entities left as they are)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def test_md_never_makes_a_link_or_an_image() -> None:
    from harness.report.tables import md

    for text in [LINK, IMAGE, ANCHOR, HOST, MAIL, FORMULA, "x@y@z", "a_@b.co", "-@b.co",
                 "WwW.x.y", "ftp://x", "[^1]", "[x]: //evil.example"]:
        assert_no_link(md(text), _LINK_RULES)
        assert_no_link(md(text))
        assert shown(md(text)) == text  # still readable
    # the harness's own names are left as they were: a row name, a parameter, an interval
    for text in ["scratch + lora@parity", "slerp:t=0.3", "0.854 (0.83, 0.88)", "probe-accuracy"]:
        assert md(text) == text


def test_plugin_strings_never_become_links(tmp_path: Path) -> None:
    """Through a run: names (an encoder, an adapter, a merge, a task), a string parameter (in
    an encoder's and a metric's labels: headings, table cells), a merge statistic's name (the
    headline's merge column), a MetricUndefined reason (the notes) and an error (failed cells),
    and CSV cells a spreadsheet would read as formulas."""
    import contextlib
    import csv
    import io

    plugin = tmp_path / "linky.py"
    plugin.write_text(LINKY)
    out = tmp_path / "board.md"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        main(["run", "--plugin", str(plugin), "--encoder", f"{HOST}:tag={LINK}",
              "--adapter", IMAGE, "--merge", "none", "--merge", ANCHOR, "--task", "parity",
              "--task", MAIL, "--train-task", MAIL, "--metric", f"undefined:tag={LINK}",
              "--metric", FORMULA, "--metric", "failing", "--metric", "silhouette", *SMOKE,
              "--store", str(tmp_path / "S"), "--out", str(out)])
    text = out.read_text()
    for name in (IMAGE, ANCHOR, HOST, MAIL, FORMULA, LINK):  # on the page, readable
        assert name in shown(text), name
    assert_no_link(text)
    assert_no_injection(text)
    assert "## Notes" in text and "## Failed cells" in text and LINK in shown(text)

    # CSV: a text cell that starts with = + - @, a tab or a CR gets a leading ', numbers stay
    with contextlib.redirect_stdout(io.StringIO()) as export:
        assert main(["export", "--store", str(tmp_path / "S")]) == 0
    rows = list(csv.DictReader(io.StringIO(export.getvalue())))
    formula = [r for r in rows if r["metric"].endswith(FORMULA)]
    assert formula and all(r["metric"] == "'" + FORMULA and float(r["value"]) == -0.25
                           for r in formula), formula
    for row in rows:
        for column, value in row.items():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), (column, value)
            if value.startswith("-"):
                assert column == "value" and float(value) < 0, (column, value)
