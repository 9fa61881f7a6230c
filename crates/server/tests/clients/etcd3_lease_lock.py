#!/usr/bin/env python3
"""The python `etcd3` client's lease and lock recipes against one etcd v3 endpoint.

Usage: etcd3_lease_lock.py HOST PORT

Driven by crates/server/tests/python_etcd3.rs. The everyday recipes: a service registry
(`client.lease(ttl)`, `put(key, value, lease=lease)`, `lease.refresh()` in a thread,
`get_prefix` to discover; the entry vanishes once refreshing stops) and a lock
(a transaction `create(key) == 0` then a put with the holder's lease; `lease.revoke()`
releases it, and an expired lease frees it). Prints "ok" and exits 0 when every check passed.
"""

import sys
import threading
import time

import etcd3

WAIT = 10


def discover(client):
    return sorted((v.decode(), m.key.decode()) for v, m in client.get_prefix("services/web/"))


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    client = etcd3.client(host=host, port=port, timeout=WAIT)

    # --- service registry ---
    lease = client.lease(3)
    assert lease.id > 0
    client.put("services/web/a", "10.0.0.1:80", lease=lease)
    other = client.lease(60)
    client.put("services/web/b", "10.0.0.2:80", lease=other)
    assert discover(client) == [("10.0.0.1:80", "services/web/a"), ("10.0.0.2:80", "services/web/b")], discover(client)
    assert lease.granted_ttl == 3, lease.granted_ttl
    assert [k.decode() for k in lease.keys] == ["services/web/a"], lease.keys

    stop = threading.Event()

    def keep_alive():
        while not stop.is_set():
            lease.refresh()
            stop.wait(1)

    t = threading.Thread(target=keep_alive, daemon=True)
    t.start()
    time.sleep(5)  # longer than the TTL: alive only thanks to the refreshes
    assert len(discover(client)) == 2, "a refreshed lease expired"
    stop.set()
    t.join(WAIT)
    deadline = time.time() + 3 + 2 + WAIT
    while len(discover(client)) != 1:
        assert time.time() < deadline, "the entry of a service that stopped refreshing stayed"
        time.sleep(0.1)
    assert discover(client) == [("10.0.0.2:80", "services/web/b")]
    assert lease.remaining_ttl == -1, lease.remaining_ttl
    other.revoke()
    assert discover(client) == []

    # --- lock: a txn `create(key) == 0` then a put with the holder's lease; revoke releases ---
    def try_lock(name, holder_lease):
        key = "locks/" + name
        ok, _ = client.transaction(
            compare=[client.transactions.create(key) == 0],
            success=[client.transactions.put(key, str(holder_lease.id), lease=holder_lease)],
            failure=[],
        )
        return ok

    a, b = client.lease(10), client.lease(10)
    assert try_lock("jobs", a)
    assert not try_lock("jobs", b), "two holders at once"
    owner, _ = client.get("locks/jobs")
    assert owner.decode() == str(a.id)
    a.revoke()
    assert try_lock("jobs", b), "a revoked holder still held the lock"
    # a holder that dies (stops refreshing) loses the lock when its lease expires
    c = client.lease(2)
    b.revoke()
    assert try_lock("jobs", c)
    d = client.lease(30)
    deadline = time.time() + 2 + 2 + WAIT
    while not try_lock("jobs", d):
        assert time.time() < deadline, "the lock of an expired holder was never freed"
        time.sleep(0.2)
    d.revoke()
    print("ok")


if __name__ == "__main__":
    main()
