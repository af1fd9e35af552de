"""A render child that fails as a broken renderer could, on a text that asks it to: CRASH ends
the process at once (as a segfault would), HANG never answers, GARBAGE answers a line that is
not the batch's. Any other batch it renders as ``modfleet.normalise.render_child`` does.

``--start-after S`` has it take S seconds to start, as a child on a busy machine can;
``--count PATH`` has it write to PATH, a line a batch, how many texts each batch asked of it."""

from __future__ import annotations

import os
import sys
import time

import orjson

from modfleet.normalise.markup import rendered_ends
from modfleet.normalise.render_child import READY


def main() -> None:
    options = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=True))
    time.sleep(float(options.get("--start-after", 0)))
    count = options.get("--count")
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    for line in sys.stdin.buffer:
        jobs = orjson.loads(line)
        if count is not None:
            with open(count, "a") as asked:
                asked.write(f"{len(jobs)}\n")
        texts = " ".join(f"{head} {tail}" for head, tail in jobs)
        if "CRASH" in texts:
            os.abort()
        if "HANG" in texts:
            time.sleep(3600)
        if "GARBAGE" in texts:
            sys.stdout.buffer.write(b'{"not": "a list of renderings"}\n')
        else:
            answer = [rendered_ends(head, tail) for head, tail in jobs]
            sys.stdout.buffer.write(orjson.dumps(answer) + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
