"""The child process that renders HTML posts for a worker (``stream.render``).

One request a line on stdin, one answer a line on stdout, both JSON: the request a list of
``[html, reach]``, the answer a list of ``[text, cut]`` in the same order. It ends when stdin
does, so it never outlives its worker.
"""

from __future__ import annotations

import sys

import orjson

from modfleet.normalise.markup import rendered


def main() -> None:
    for line in sys.stdin.buffer:
        jobs = orjson.loads(line)
        answer = [rendered(html, reach) for html, reach in jobs]
        sys.stdout.buffer.write(orjson.dumps(answer) + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
