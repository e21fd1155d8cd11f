"""Settling an encoder's machine-dependent choices (``Encoder.settled``: ``precision=auto``)
before any key is made, here or, for a Ray run, once on the driver for every node."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from typing import Any

from harness import keys
from harness.api import Encoder, HarnessError
from harness.component import plugin_call
from harness.params import label, params_of

#: (identity as selected, parameters once settled) of an encoder that settling changed
Pin = tuple[dict[str, Any], dict[str, Any]]


def settled(encoders: list[Encoder], settle: Callable[[Encoder], Encoder],
            pins: list[Pin]) -> list[Encoder]:
    """Each encoder with its machine's choices made (``Encoder.settled``), duplicates dropped
    (``precision=auto`` and ``precision=fp32`` are one encoder on a machine without bf16);
    each change is appended to ``pins``. What ``settled`` raises (``sys.exit()`` too) is one
    line naming the encoder."""
    out: list[Encoder] = []
    for enc in encoders:
        with plugin_call(f"encoder {enc.name!r}: settled()"):
            done = settle(enc)
        if type(done) is not type(enc):
            raise HarnessError(f"encoder {enc.name!r}: settled() returned "
                               f"{type(done).__name__}; expected a {type(enc).__name__}")
        if done != enc:
            pins.append((keys.identity(enc), params_of(done)))
        if done not in out:
            out.append(done)
    return out


def pinned(pins: list[Pin]) -> Callable[[Encoder], Encoder]:
    """A ``settle`` that makes another machine's choices (a Ray driver's ``Plan.pins``)."""
    def settle(enc: Encoder) -> Encoder:
        for before, after in pins:
            if keys.identity(enc) == before:
                return dataclasses.replace(enc, **after)  # type: ignore[type-var]
        return enc
    return settle


def on_worker(pins: list[Any], device: str, notes: list[str]) -> Callable[[Encoder], Encoder]:
    """A Ray worker's ``settle``: the driver's choices (``pins``), with a note in ``notes``
    for each encoder this node would have settled otherwise."""
    driver = pinned([tuple(p) for p in pins])  # type: ignore[misc]

    def settle(enc: Encoder) -> Encoder:
        done, mine = driver(enc), enc.settled(device)
        if mine != done:
            notes.append(f"{label(enc)} would be {label(mine)} on this node "
                         f"({socket.gethostname()}, {device}); the run uses {label(done)}, "
                         "settled on the driver, on every node")
        return done
    return settle


def settle_device(device: str, resources: dict[str, Any] | None = None) -> str:
    """The device a Ray run settles its encoders' machine choices for (``Encoder.settled``),
    once, on the driver: ``--device`` if named, else CUDA where the jobs get GPUs."""
    if device != "auto":
        return device
    return "cuda" if resources and resources.get("gpus") else "cpu"
