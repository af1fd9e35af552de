"""Fault injection for a real worker process: ``python faults.py STEP`` runs ``modfleet worker``
with one step of batch handling made to raise.

Record steps raise for the post whose text contains ``POISON``; batch steps raise once, for the
first batch that holds such a post; the crash step ends the process (SIGSEGV) whenever it reads
that post, and the hang step stops it there, holding the GIL; the crash-delivering step ends
it whenever it delivers that post's decision. The step names are the stages of
``StreamWorker``'s batch handling, in order.
"""

from __future__ import annotations

import ctypes
import re
import sys
from typing import Any

POISON = "FAULT-INJECTED"

# Steps that one record can break: that record is dead-lettered, its neighbours decided.
RECORD_STEPS = ("decode", "decide", "build")
# A post that kills the interpreter whenever it is read (SIGSEGV), as a native parser's bug would.
CRASH_STEP = "crash"
# A post that hangs the interpreter whenever it is read, the GIL held.
HANG_STEP = "hang"
# A post whose outcome kills the interpreter whenever the worker delivers it (SIGSEGV), as a
# native bug in the producer's path would: every post is read; the death comes after.
CRASH_DELIVERING_STEP = "crash-delivering"
# Steps around the batch: the worker exits without acking and the batch is redelivered.
BATCH_STEPS = ("deliver", "count", "observe", "ack")


class Injected(RuntimeError):
    pass


def _poisoned(records: Any) -> bool:
    return any(POISON.encode() in (r.value or b"") for r in records)


def install(step: str) -> None:
    from modfleet.emit import messages
    from modfleet.stream import app, pipeline

    fired = [False]

    def once(records: Any) -> None:
        if not fired[0] and _poisoned(records):
            fired[0] = True
            raise Injected(f"injected fault at {step}")

    if step in (CRASH_STEP, HANG_STEP):
        real_read = pipeline.decode

        def read(record: Any, *args: Any) -> Any:
            if POISON.encode() in (record.value or b""):
                if step == CRASH_STEP:
                    ctypes.string_at(0)  # a native crash, as a parser's bug would be: SIGSEGV
                # Backtracking for hours in C, the GIL held: the event loop, /health and every
                # Python thread stop with it, as a pathological pattern in a parser would.
                re.fullmatch(r"(a+)+b", "a" * 64)
            return real_read(record, *args)

        pipeline.decode = read  # type: ignore[assignment]
    elif step == CRASH_DELIVERING_STEP:
        real_deliver = app.StreamWorker._deliver

        async def deliver(self: Any, outbound: Any) -> Any:
            # A dead letter is not that post's outcome: the worker may report it.
            decided = [m.source for m in outbound if m.kind != "dead_letter" and m.source]
            if _poisoned(decided):
                ctypes.string_at(0)
            return await real_deliver(self, outbound)

        app.StreamWorker._deliver = deliver  # type: ignore[method-assign]
    elif step == "decode":
        real_decode = pipeline.decode

        def decode(record: Any, *args: Any) -> Any:
            if POISON.encode() in (record.value or b""):
                raise Injected("injected fault at decode")
            return real_decode(record, *args)

        pipeline.decode = decode  # type: ignore[assignment]
    elif step == "decide":
        real_decide = pipeline.Pipeline._decide

        def decide(self: Any, item: Any, *args: Any) -> Any:
            if POISON in item.post.text:
                raise Injected("injected fault at decide")
            return real_decide(self, item, *args)

        pipeline.Pipeline._decide = decide  # type: ignore[method-assign]
    elif step == "build":
        real_build = messages.decision_message

        def build(d: Any, *args: Any, **kwargs: Any) -> Any:
            if POISON in d.original_text:
                raise Injected("injected fault at build")
            return real_build(d, *args, **kwargs)

        pipeline.decision_message = build  # type: ignore[assignment]
    elif step in BATCH_STEPS:
        _install_batch_fault(step, once, app)
    else:
        raise SystemExit(f"unknown step {step!r}")


def _install_batch_fault(step: str, once: Any, app: Any) -> None:
    worker = app.StreamWorker
    if step == "deliver":
        real_deliver = worker._deliver

        async def deliver(self: Any, outbound: Any) -> Any:
            # Half the batch's output is on the broker when delivery breaks.
            sources = [m.source for m in outbound if m.source is not None]
            delivered = await real_deliver(self, outbound[: len(outbound) // 2])
            once(sources)
            return delivered + await real_deliver(self, outbound[len(outbound) // 2 :])

        worker._deliver = deliver
    elif step == "count":
        real_count = app.count_delivered

        def count(metrics: Any, delivered: Any, records: int) -> None:
            once([m.source for m in delivered if m.source is not None])
            real_count(metrics, delivered, records)

        app.count_delivered = count
    elif step == "observe":
        real_done = app.BatchObserver.batch_done

        def batch_done(self: Any, records: Any) -> None:
            once(records)
            real_done(self, records)

        app.BatchObserver.batch_done = batch_done
    elif step == "ack":
        real_ack = app._ack

        async def ack(stream: Any, events: Any) -> None:
            once([e.message for e in events])
            await real_ack(stream, events)

        app._ack = ack


if __name__ == "__main__":
    install(sys.argv[1])
    from modfleet.cli import main

    sys.argv = ["modfleet", "worker"]
    main()
