"""Progress, the bandwidth cap and the thread pool that copies and hashes files in order.

Meter calls the operation's check() and progress callbacks; Throttle keeps the copying
threads under a byte rate; Pipeline runs per-file work on a few threads and hands the results
back in the order the files were added, holding a bounded window so memory stays flat.
"""

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from backups.sizes import parse_bandwidth  # noqa: F401  (re-exported)
from backups.storage.results import FileProgress

BATCH_FILES = 32  # small files go to the pool in batches: a hand-off costs more than a read
BATCH_BYTES = 4 << 20
LATER = object()  # a work function's answer when asked to run now: its read would wait


class Meter:
    """Calls check() at every step, and progress() at least every 0.5 s and at every 5% of the
    bytes (a quick run shows its steps too, from its first bytes); holds the throttle."""

    def __init__(
        self,
        progress: Callable[[FileProgress], None] | None,
        check: Callable | None,
        bandwidth: int = 0,
    ):
        self.progress, self.check = progress, check
        self.files_total = self.bytes_total = self.files_done = self.bytes_done = 0
        self.new_bytes = 0  # a backup's bytes newly stored so far
        # (files, bytes, known) in all, when the totals are estimated as the work goes;
        # known is False while they are a floor (a count still running ahead of the copy)
        self.estimate: Callable[[], tuple[int, int, bool]] | None = None
        self.total_known = True
        self.throttle = Throttle(bandwidth)
        self._last = time.monotonic()
        self._shown_bytes = 0  # bytes_done at the last report

    def beat(self) -> None:
        if self.check is not None:
            self.check()
        if self.progress is not None and (
            time.monotonic() - self._last >= 0.5
            or self.bytes_done - self._shown_bytes > (self._shown_bytes and self.bytes_total // 20)
        ):
            self.report()

    def report(self) -> None:
        self._last = time.monotonic()
        self._shown_bytes = self.bytes_done
        if self.progress is not None:
            if self.estimate is not None:
                self.files_total, self.bytes_total, self.total_known = self.estimate()
            files_total = max(self.files_total, self.files_done)
            bytes_total = max(self.bytes_total, self.bytes_done)
            done = FileProgress(
                self.files_done,
                files_total,
                self.bytes_done,
                bytes_total,
                self.new_bytes,
                total_known=self.total_known,
            )
            self.progress(done)


class Throttle:
    """Keeps the copying threads together under ``bandwidth`` bytes per second (0: no cap).

    take() counts bytes just read or written and sleeps the calling thread while the total is
    ahead of the cap. Time not spent copying (a scan of unchanged files) is credit for one
    second only, so the cap holds over any stretch longer than that.
    """

    def __init__(
        self,
        bandwidth: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.bandwidth, self.moved = bandwidth, 0
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._since = clock()

    def take(self, size: int, stop: threading.Event | None = None) -> None:
        with self._lock:
            self.moved += size
            if not self.bandwidth:
                return
            now = self._clock()
            idle = now - self._since - (self.moved - size) / self.bandwidth
            if idle > 1.0:
                self._since += idle - 1.0
            until = self._since + self.moved / self.bandwidth
        while (left := until - self._clock()) > 0 and not (stop is not None and stop.is_set()):
            self._sleep(min(left, 0.25))


class _Batch:
    __slots__ = ("calls", "weight", "future")

    def __init__(self):
        self.calls, self.weight, self.future = [], 0, None


def _run_calls(calls: list) -> list:
    return [fn(*args) for fn, args in calls]


class InlineExecutor:
    """The executor of workers=0: runs each batch at once in the calling thread.

    For storage where files are read from memory (a warm page cache, a tmpfs), the per-file
    work is Python holding the GIL, and threads would only hand it to each other.
    """

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # raised again where the result is read, as in a pool
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


class Pipeline:
    """Runs per-item work on a thread pool; hands items back in the order they were added.

    At most `window` items are held, so memory stays flat however many go through. Workers
    should give up when `stop` is set (on leaving the with block, normally or not). With
    workers=0 the work runs in the calling thread, in batches all the same.

    add(..., now=True) first runs fn(*args, now=True) in the calling thread: a work function
    answers LATER when its file is not in memory, and only then is it queued for a worker
    (as fn(*args)). On a warm cache the threads then stay idle instead of trading the GIL.
    """

    def __init__(self, workers: int, meter: Meter, window: int | None = None):
        self.threads = workers > 0
        if not self.threads:
            self.pool = InlineExecutor()
        else:
            self.pool = ThreadPoolExecutor(workers, thread_name_prefix="a4c-filestore")
        self.window = window or max(1, workers) * BATCH_FILES * 4
        self.meter = meter
        self.pending: deque = deque()
        self.batch: _Batch | None = None
        self.stop = threading.Event()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def add(
        self,
        item,
        fn: Callable | None = None,
        args: tuple = (),
        *,
        weight: int = 0,
        now: bool = False,
    ) -> list:
        """Queues item (with fn(*args) to run for it); returns the (item, result) pairs ready."""
        if fn is not None and now and self.threads:
            result = fn(*args, now=True)
            if result is not LATER:
                self.pending.append((item, None, result))
                return self._drain(final=False)
        if fn is None:
            self.pending.append((item, None, None))
        else:
            batch = self.batch = self.batch or _Batch()
            self.pending.append((item, batch, len(batch.calls)))
            batch.calls.append((fn, args))
            batch.weight += weight
            if len(batch.calls) >= BATCH_FILES or batch.weight >= BATCH_BYTES:
                self._send()
        return self._drain(final=False)

    def finish(self) -> list:
        return self._drain(final=True)

    def _send(self) -> None:
        self.batch.future = self.pool.submit(_run_calls, self.batch.calls)
        self.batch = None

    def _drain(self, final: bool) -> list:
        ready, pending = [], self.pending
        while pending:
            item, batch, slot = pending[0]  # slot: the batch's index, or the result if no batch
            result = slot
            if batch is not None:
                may_wait = final or len(pending) > self.window
                if batch.future is None:
                    if not may_wait:
                        break
                    self._send()
                if not batch.future.done():
                    if not may_wait:
                        break
                    self._wait(batch.future)
                result = batch.future.result()[slot]
            pending.popleft()
            ready.append((item, result))
        return ready

    def _wait(self, future) -> None:
        while True:
            try:
                future.result(timeout=0.25)
                return
            except FutureTimeout:
                self.meter.beat()
