"""Many Python threads, and many asyncio tasks, calling a durable journal at
once share fsyncs: the GIL is released while a call waits for the disk, and
the asyncio face never blocks the event loop.

Guards against a binding that holds the GIL across fdatasync (every caller
in a gateway would queue behind one disk wait, ~7k commands/s at best, as
SQLite FULL does) and against an async face that is a blocking call in
disguise (the event loop would stall for every fsync).
"""

from __future__ import annotations

import asyncio
import threading
import time

import bookend

THREADS = 16
PER_THREAD = 40
TASKS = 64


def test_threads_share_fsyncs(face):
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(PER_THREAD):
                ack = face.start(f"t{t}-{i}", key=f"k{t}-{i}")
                face.end(ack.session_id, "manual_reset")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    before = face.stats()["writer"]
    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    after = face.stats()
    appends = after["writer"]["appends"] - before["appends"]
    fsyncs = after["writer"]["fsyncs"] - before["fsyncs"]
    assert after["sessions"]["ended"] == THREADS * PER_THREAD
    assert appends >= THREADS * PER_THREAD * 2
    # Each of the 16 threads has one command in flight; alone each would
    # need its own fsync. Sharing means far fewer. Over HTTP a request costs
    # the client more GIL-held time than an fsync takes, so fewer requests
    # are in flight at once (measured: 1.7 appends per fsync on 2 cores).
    share = 3 if isinstance(face, bookend.Journal) else 1.25
    assert fsyncs * share < appends, f"{fsyncs} fsyncs for {appends} appends"


def test_asyncio_tasks_share_fsyncs_and_the_loop_keeps_running(face):
    async def main() -> tuple[int, float]:
        stalls: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                stalls.append(now - last)
                last = now

        async def task(n: int) -> None:
            for i in range(10):
                ack = await face.start_async(f"a{n}-{i}", key=f"ak{n}-{i}")
                await face.end_async(ack.session_id, "manual_reset")

        tick = asyncio.create_task(ticker())
        await asyncio.wait_for(asyncio.gather(*(task(n) for n in range(TASKS))), timeout=120)
        stop.set()
        await tick
        return len(stalls), max(stalls)

    before = face.stats()["writer"]
    ticks, worst = asyncio.run(main())
    after = face.stats()
    appends = after["writer"]["appends"] - before["appends"]
    fsyncs = after["writer"]["fsyncs"] - before["fsyncs"]
    assert after["sessions"]["ended"] == TASKS * 10
    # Alone, each of the 64 tasks' commands would need its own fsync. On 2
    # cores this measured 7.7 to 15.4 appends per fsync (idle and with a
    # busy core), and once 4.8 in CI; 3 still proves the sharing.
    assert fsyncs * 3 < appends, f"{fsyncs} fsyncs for {appends} appends"
    assert ticks > 0
    # No single fsync-sized stall of the loop is allowed to add up: the
    # loop kept ticking while commands waited for the disk.
    assert worst < 0.5, f"the event loop stalled for {worst:.3f} s"
