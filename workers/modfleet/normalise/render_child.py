"""The child process that renders HTML posts for a worker (``stream.render``).

One request a line on stdin, one answer a line on stdout, both JSON: the request a list of
``[head, tail]`` (``markup.ends``: a post, or the two ends of a long one, its tail then not
null), the answer a list of ``[text, cut]`` in the same order. Before the first, once the
parser is imported, it says ``READY``: its start has a deadline of its own, apart from a
batch's. It ends when stdin does, so it never outlives its worker.
"""

from __future__ import annotations

import sys

import orjson

from modfleet.normalise.markup import rendered_ends

READY = b'"ready"\n'


def main() -> None:
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    for line in sys.stdin.buffer:
        jobs = orjson.loads(line)
        answer = [rendered_ends(head, tail) for head, tail in jobs]
        sys.stdout.buffer.write(orjson.dumps(answer) + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
