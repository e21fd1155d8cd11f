"""A transformers backbone written as a sentence-transformers model folder (``harness
export-model``): the transformer with the weights loaded at the time (a fine-tune's or a merge's
tensors applied), in float32 safetensors; its tokenizer; the harness's pooling (mean over the
real tokens, the last real token, or the first); no normalisation (the harness's embeddings are
not normalised; every metric that wants unit rows normalises them itself). A sequence enters as
its text rendering, ``harness.api.render`` (``3, 5, 7, 11``): the template is written in the
model's config (``config_sentence_transformers.json``, ``harness`` entry) and in its card.
Nothing needs ``trust_remote_code``: the folder holds only what sentence-transformers' own
``Transformer`` and ``Pooling`` modules load. The tokenizer is saved without its chat template
(SmolLM2's has one): sentence-transformers 6 would wrap each text in it, system prompt and all
(cosine 0.65 to the harness's embeddings on SmolLM2), where the harness embeds the text alone.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

#: the harness's pooling -> sentence-transformers' pooling mode
POOLING = {"mean": "mean", "last": "lasttoken", "cls": "cls"}
#: how a sequence of integers becomes the text the model reads (``harness.api.render``)
TEMPLATE = "the integers in order, each in decimal, separated by ', ' (e.g. '3, 5, 7, 11')"


def save(module: Any, tokenizer: Any, pooling: str, folder: Path) -> None:
    """Write ``module`` (a transformers base model, as loaded now) and ``tokenizer`` into
    ``folder`` as a sentence-transformers model with the harness's ``pooling``."""
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers 6 moved its modules; 5 has them under ``models``
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # pragma: no cover - the older layout
        from sentence_transformers.models import Pooling, Transformer  # type: ignore[no-redef]

    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    disable_progress_bars()  # "Writing model shards" on stderr
    if pooling not in POOLING:
        raise ValueError(f"pooling {pooling!r} has no sentence-transformers equivalent")
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-hf-") as hf:
        module.save_pretrained(hf, safe_serialization=True)
        template = getattr(tokenizer, "chat_template", None)
        try:  # sentence-transformers 6 wraps text in a tokenizer's chat template: the harness
            tokenizer.chat_template = None  # feeds the rendered sequence alone
            tokenizer.save_pretrained(hf)
        finally:
            tokenizer.chat_template = template
        transformer = Transformer(hf)
        dimension = getattr(transformer, "get_embedding_dimension", None) or \
            transformer.get_word_embedding_dimension  # sentence-transformers 5
        pool = Pooling(dimension(), pooling_mode=POOLING[pooling])
        model = SentenceTransformer(modules=[transformer, pool], device="cpu")
        model.save(str(folder))
    config = folder / "config_sentence_transformers.json"
    data = json.loads(config.read_text()) if config.is_file() else {}
    data["harness"] = {"input": TEMPLATE, "pooling": pooling, "normalised": False}
    config.write_text(json.dumps(data, indent=2) + "\n")
