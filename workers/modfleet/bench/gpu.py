"""``modfleet bench gpu``: ``bench llm`` on this node's GPU, with GPU-sized defaults.

The stages, measurement and report are ``bench llm``'s (see ``modfleet.bench.llm``); only the
device differs: a CUDA device is required (the command refuses with exit status 2 and says
what is missing otherwise), and the defaults fill a GPU (``llm.CUDA``: more posts, larger
micro-batches, more requests in flight, memory as a share of the GPU, compiled graphs).
"""

from __future__ import annotations

import sys

import click

from modfleet.bench.llm import CUDA, command
from modfleet.errors import FatalError


def require_cuda() -> None:
    """Exit with status 2, saying what is missing, where vLLM cannot run on a GPU here."""
    from modfleet.inference.vllm_backend import require_gpu

    try:
        require_gpu()
    except FatalError as exc:
        click.echo(
            f"modfleet bench gpu: {exc}; run it on a GPU node, or `modfleet bench llm` here.",
            err=True,
        )
        sys.exit(2)


gpu = command("gpu", CUDA, require_cuda)
