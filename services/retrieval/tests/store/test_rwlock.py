"""The collection lock's non-waiting read: taken beside other readers, refused while a writer holds or awaits it."""

from __future__ import annotations

import threading

from ragfleet.retrieval.store.rwlock import RWLock


def test_read_now_is_refused_at_once_while_a_writer_holds_or_awaits_the_lock() -> None:
    lock = RWLock()
    with lock.read(), lock.read_now() as held:
        assert held  # readers share it
    with lock.write(), lock.read_now() as held:
        assert not held

    # A writer waiting for a reader to finish: a new reader must not starve it.
    waiting, written = threading.Event(), threading.Event()

    def write() -> None:
        waiting.set()
        with lock.write():
            written.set()

    with lock.read():
        writer = threading.Thread(target=write)
        writer.start()
        waiting.wait()
        while not lock._writers_waiting:  # the writer is queued behind this reader
            threading.Event().wait(0.001)
        with lock.read_now() as held:
            assert not held
    writer.join()
    assert written.is_set()
    with lock.read_now() as held:
        assert held  # and released: a later writer gets it
    with lock.write():
        pass
