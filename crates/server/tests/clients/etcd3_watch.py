#!/usr/bin/env python3
"""The python `etcd3` client's watch API against one etcd v3 endpoint.

Usage: etcd3_watch.py HOST PORT

Driven by crates/server/tests/python_etcd3.rs (against retcd, or against etcd with
RETCD_COMPAT_SELFTEST=1). Uses keys under "py/" on a fresh server. Prints "ok" and exits 0
when every check passed; any failed check raises (traceback, non-zero exit). Every wait is
bounded. etcd3 0.12 needs PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python with protobuf > 3.20.
"""

import queue
import sys
import threading

import etcd3
from etcd3 import events, exceptions

WAIT = 10  # seconds for anything expected to arrive


def read_while(it, n, writes):
    """Reads `n` events from the iterator `it` while `writes()` runs; bounded by WAIT."""
    got = []
    reader = threading.Thread(target=lambda: got.extend(next(it) for _ in range(n)), daemon=True)
    reader.start()
    writes()
    reader.join(WAIT)
    assert not reader.is_alive(), "events did not arrive: %r" % got
    return got


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    client = etcd3.client(host=host, port=port, timeout=WAIT)

    # watch(): an iterator of events on one key, puts and the delete, in order.
    it, cancel = client.watch("py/a")

    def writes():
        client.put("py/a", "1")
        client.put("py/b", "not watched")
        client.put("py/a", "2")
        client.delete("py/a")

    got = read_while(it, 3, writes)
    cancel()
    assert [type(e) for e in got] == [events.PutEvent, events.PutEvent, events.DeleteEvent], got
    assert [e.value for e in got[:2]] == [b"1", b"2"], got
    assert all(e.key == b"py/a" for e in got), got
    revs = [e.mod_revision for e in got]
    assert revs == sorted(revs) and len(set(revs)) == 3, revs
    first_rev = revs[0]

    # History replay from a past revision (start_revision), via a callback.
    q = queue.Queue()
    wid = client.add_watch_callback("py/a", q.put, start_revision=first_rev)
    events_seen = []
    while len(events_seen) < 3:
        events_seen += q.get(timeout=WAIT).events
    assert [e.mod_revision for e in events_seen] == revs, events_seen
    client.cancel_watch(wid)

    # watch_prefix() with prev_kv: the previous value comes along; other keys do not.
    it, cancel = client.watch_prefix("py/p/", prev_kv=True)

    def writes():
        client.put("py/p/x", "old")
        client.put("py/q", "outside the prefix")
        client.put("py/p/x", "new")

    got = read_while(it, 2, writes)
    cancel()
    assert [(e.key, e.value) for e in got] == [(b"py/p/x", b"old"), (b"py/p/x", b"new")], got
    assert got[1].prev_value == b"old", got[1]._event

    # (filters= cannot be used: etcd3 0.12 assigns the repeated `filters` field, which
    # protobuf refuses, before anything is sent.)

    # watch_once(): the first event, and WatchTimedOut when nothing happens.
    result = {}

    def once():
        result["event"] = client.watch_once("py/once", timeout=WAIT)

    t = threading.Thread(target=once, daemon=True)
    t.start()
    # The watch must exist before the put; there is no hook for that, so retry the put.
    while t.is_alive() and "event" not in result:
        client.put("py/once", "hit")
        t.join(0.2)
    assert result["event"].value == b"hit", result
    try:
        client.watch_once("py/never", timeout=0.5)
        raise AssertionError("watch_once did not time out")
    except exceptions.WatchTimedOut:
        pass

    # Many watchers multiplexed on the client's one stream, each gets only its key;
    # a canceled watcher gets nothing more.
    queues = {}
    ids = {}
    for i in range(20):
        key = "py/many/%02d" % i
        queues[key] = queue.Queue()
        ids[key] = client.add_watch_callback(key, queues[key].put)
    client.cancel_watch(ids.pop("py/many/00"))
    for key in sorted(queues):
        client.put(key, key)
    for key in sorted(ids):
        r = queues[key].get(timeout=WAIT)
        assert [(e.key.decode(), e.value.decode()) for e in r.events] == [(key, key)], r.events
        assert r.header.revision >= r.events[0].mod_revision
    assert queues["py/many/00"].empty()
    for wid in ids.values():
        client.cancel_watch(wid)

    # A start revision below the compaction revision: RevisionCompactedError.
    status_rev = client.put("py/c", "x").header.revision
    client.compact(status_rev, physical=True)
    q = queue.Queue()
    try:
        wid = client.add_watch_callback("py/a", q.put, start_revision=first_rev)
        err = q.get(timeout=WAIT)
    except exceptions.RevisionCompactedError as e:  # if reported with `created`
        err = e
    assert isinstance(err, exceptions.RevisionCompactedError), err
    assert err.compacted_revision == status_rev, err.compacted_revision

    client.close()
    print("ok")


if __name__ == "__main__":
    main()
