"""kazoo recipes with two or more clients contending."""

import threading

import pytest
from kazoo.recipe.cache import TreeCache, TreeEvent

from zkhelpers import EventLog, wait_for

WAIT = 15.0


def _run(target, *args):
    errors = []

    def wrapper():
        try:
            target(*args)
        except BaseException as e:  # surfaced by the caller via `errors`
            errors.append(e)

    t = threading.Thread(target=wrapper, daemon=True)
    t.start()
    return t, errors


def test_lock_blocks_second_client_until_release(make_client, path):
    a, b = make_client(), make_client()
    lock_a = a.Lock(f"{path}/lock", "client-a")
    lock_b = b.Lock(f"{path}/lock", "client-b")
    assert lock_a.acquire(timeout=WAIT)
    got_b = threading.Event()
    t, errors = _run(lambda: lock_b.acquire(timeout=WAIT) and got_b.set())
    assert wait_for(lambda: len(lock_a.contenders()) == 2, WAIT)
    assert lock_a.contenders() == ["client-a", "client-b"]
    assert not got_b.is_set()
    lock_a.release()
    assert got_b.wait(WAIT)
    t.join(WAIT)
    assert not errors
    assert lock_b.contenders() == ["client-b"]
    lock_b.release()


def test_lock_passes_on_when_holder_session_closes(make_client, path):
    a, b = make_client(), make_client()
    assert a.Lock(f"{path}/lock", "a").acquire(timeout=WAIT)
    lock_b = b.Lock(f"{path}/lock", "b")
    got_b = threading.Event()
    t, errors = _run(lambda: lock_b.acquire(timeout=WAIT) and got_b.set())
    assert wait_for(lambda: len(lock_b.contenders()) == 2, WAIT)
    a.stop()  # its ephemeral lock node vanishes with the session
    assert got_b.wait(WAIT)
    t.join(WAIT)
    assert not errors
    lock_b.release()


def test_lock_gives_mutual_exclusion_under_contention(make_client, path):
    clients = [make_client(), make_client()]
    inside = [0]
    max_inside = [0]
    total = [0]
    guard = threading.Lock()

    def worker(client, name):
        lock = client.Lock(f"{path}/mutex", name)
        for _ in range(5):
            assert lock.acquire(timeout=WAIT)
            with guard:
                inside[0] += 1
                max_inside[0] = max(max_inside[0], inside[0])
            # A read-modify-write on a znode that only the lock protects.
            value = int(client.get(f"{path}/count")[0])
            client.set(f"{path}/count", str(value + 1).encode())
            with guard:
                inside[0] -= 1
                total[0] += 1
            lock.release()

    clients[0].create(f"{path}/count", b"0")
    threads = [_run(worker, clients[i % 2], f"w{i}") for i in range(4)]
    for t, _ in threads:
        t.join(60)
    for _, errors in threads:
        assert not errors, errors
    assert total[0] == 20
    assert max_inside[0] == 1
    assert clients[0].get(f"{path}/count")[0] == b"20"


def test_read_locks_share_and_write_lock_waits(make_client, path):
    a, b, c = make_client(), make_client(), make_client()
    r1 = a.ReadLock(f"{path}/rw", "r1")
    r2 = b.ReadLock(f"{path}/rw", "r2")
    w = c.WriteLock(f"{path}/rw", "w")
    assert r1.acquire(timeout=WAIT)
    assert r2.acquire(timeout=WAIT)  # readers do not exclude each other
    got_w = threading.Event()
    t, errors = _run(lambda: w.acquire(timeout=WAIT) and got_w.set())
    assert wait_for(lambda: len(w.contenders()) == 3, WAIT)
    r1.release()
    assert not got_w.is_set(), "writer got the lock while a reader holds it"
    r2.release()
    assert got_w.wait(WAIT)
    t.join(WAIT)
    assert not errors
    w.release()


def test_election_elects_one_leader_and_fails_over(make_client, path):
    a, b = make_client(), make_client()
    ea = a.Election(f"{path}/election", "node-a")
    eb = b.Election(f"{path}/election", "node-b")
    a_leads, b_leads, a_done = threading.Event(), threading.Event(), threading.Event()

    def lead_a():
        a_leads.set()
        a_done.wait(WAIT)  # hold leadership until told to stop

    ta, errors_a = _run(ea.run, lead_a)
    assert a_leads.wait(WAIT)
    tb, errors_b = _run(eb.run, b_leads.set)
    assert wait_for(lambda: ea.contenders() == ["node-a", "node-b"], WAIT)
    assert not b_leads.is_set()
    a_done.set()  # leader returns -> gives up leadership
    assert b_leads.wait(WAIT)
    ta.join(WAIT)
    tb.join(WAIT)
    assert not errors_a and not errors_b


def test_counter_is_consistent_across_contending_clients(make_client, path):
    clients = [make_client(), make_client()]

    def bump(client):
        counter = client.Counter(f"{path}/counter")
        for _ in range(15):
            counter += 1

    threads = [_run(bump, c) for c in clients for _ in range(2)]
    for t, _ in threads:
        t.join(60)
    for _, errors in threads:
        assert not errors, errors
    assert clients[0].Counter(f"{path}/counter").value == 60


def test_counter_supports_floats_and_decrement(zk, path):
    counter = zk.Counter(f"{path}/fc", default=0.0)
    counter += 2.5
    counter -= 1.0
    assert counter.value == 1.5
    assert zk.get(f"{path}/fc")[0] == b"1.5"


def test_barrier_releases_waiter_when_removed(make_client, path):
    a, b = make_client(), make_client()
    barrier_a = a.Barrier(f"{path}/barrier")
    barrier_a.create()
    released = threading.Event()
    t, errors = _run(lambda: b.Barrier(f"{path}/barrier").wait(WAIT) and released.set())
    assert not released.is_set()
    barrier_a.remove()
    assert released.wait(WAIT)
    t.join(WAIT)
    assert not errors


def test_double_barrier_enters_and_leaves_together(make_client, path):
    clients = [make_client(), make_client(), make_client()]
    entered = EventLog()
    left = EventLog()

    def participant(client, ident):
        db = client.DoubleBarrier(f"{path}/double", 3, identifier=ident)
        db.enter()
        entered(ident)
        db.leave()
        left(ident)

    threads = [_run(participant, c, f"p{i}") for i, c in enumerate(clients[:2])]
    # With only 2 of 3 participants present nobody may enter.
    def present():
        stat = clients[2].exists(f"{path}/double")
        return stat is not None and stat.numChildren >= 2

    assert wait_for(present, WAIT)
    assert entered.snapshot() == []
    threads.append(_run(participant, clients[2], "p2"))
    assert entered.wait_count(3, WAIT)
    assert left.wait_count(3, WAIT)
    for t, errors in threads:
        t.join(WAIT)
        assert not errors, errors
    assert sorted(entered.snapshot()) == ["p0", "p1", "p2"]


def test_queue_delivers_by_priority_then_fifo(make_client, path):
    producer, consumer = make_client(), make_client()
    q_in = producer.Queue(f"{path}/queue")
    q_in.put(b"low-1", priority=200)
    q_in.put(b"high", priority=10)
    q_in.put(b"low-2", priority=200)
    q_in.put(b"mid", priority=100)
    q_out = consumer.Queue(f"{path}/queue")
    assert len(q_out) == 4
    got = [q_out.get() for _ in range(4)]
    assert got == [b"high", b"mid", b"low-1", b"low-2"]
    assert q_out.get() is None
    assert len(q_in) == 0


def test_locking_queue_hands_item_to_one_consumer(make_client, path):
    producer, c1, c2 = make_client(), make_client(), make_client()
    producer.LockingQueue(f"{path}/lq").put(b"job-1")
    q1 = c1.LockingQueue(f"{path}/lq")
    q2 = c2.LockingQueue(f"{path}/lq")
    assert q1.get(timeout=WAIT) == b"job-1"
    assert q1.holds_lock()
    # The only item is taken, so a second consumer waits until one arrives.
    got2 = EventLog()
    t, errors = _run(lambda: got2(q2.get(timeout=WAIT)))
    producer.LockingQueue(f"{path}/lq").put(b"job-2")
    assert got2.wait_count(1, WAIT)
    assert got2.snapshot() == [b"job-2"]
    assert q1.consume()
    assert q2.consume()
    t.join(WAIT)
    assert not errors
    assert len(producer.LockingQueue(f"{path}/lq")) == 0


def test_semaphore_limits_concurrent_holders(make_client, path):
    a, b, c = make_client(), make_client(), make_client()
    sa = a.Semaphore(f"{path}/sem", "a", max_leases=2)
    sb = b.Semaphore(f"{path}/sem", "b", max_leases=2)
    sc = c.Semaphore(f"{path}/sem", "c", max_leases=2)
    assert sa.acquire(timeout=WAIT)
    assert sb.acquire(timeout=WAIT)
    assert sorted(sa.lease_holders()) == ["a", "b"]
    assert not sc.acquire(blocking=False)
    got_c = threading.Event()
    t, errors = _run(lambda: sc.acquire(timeout=WAIT) and got_c.set())
    sa.release()
    assert got_c.wait(WAIT)
    t.join(WAIT)
    assert not errors
    assert sorted(sb.lease_holders()) == ["b", "c"]
    sb.release()
    sc.release()


def test_party_membership_seen_by_other_clients(make_client, path):
    a, b, observer = make_client(), make_client(), make_client()
    pa = a.Party(f"{path}/party", "alice")
    pb = b.ShallowParty(f"{path}/shallow", "bob")
    pa.join()
    a.Party(f"{path}/party", "anne").join()
    pb.join()
    assert sorted(observer.Party(f"{path}/party")) == ["alice", "anne"]
    assert len(observer.Party(f"{path}/party")) == 2
    assert list(observer.ShallowParty(f"{path}/shallow")) == ["bob"]
    pa.leave()
    assert list(observer.Party(f"{path}/party")) == ["anne"]
    b.stop()  # party members are ephemeral
    assert len(observer.ShallowParty(f"{path}/shallow")) == 0


def test_tree_cache_mirrors_changes_from_another_client(zk, zk2, path):
    root = f"{path}/tree"
    zk2.create(f"{root}/a", b"1", makepath=True)
    events = EventLog()
    cache = TreeCache(zk, root)
    cache.listen(lambda ev: events((ev.event_type, ev.event_data.path if ev.event_data else None)))
    cache.start()
    try:
        assert events.wait_until(lambda items: (TreeEvent.INITIALIZED, None) in items, WAIT)
        assert cache.get_data(f"{root}/a").data == b"1"

        zk2.create(f"{root}/a/b", b"2")
        assert events.wait_until(lambda items: (TreeEvent.NODE_ADDED, f"{root}/a/b") in items, WAIT)
        zk2.set(f"{root}/a", b"1b")
        assert events.wait_until(lambda items: (TreeEvent.NODE_UPDATED, f"{root}/a") in items, WAIT)
        assert cache.get_data(f"{root}/a").data == b"1b"
        assert cache.get_data(f"{root}/a").stat.version == 1
        zk2.delete(f"{root}/a/b")
        assert events.wait_until(lambda items: (TreeEvent.NODE_REMOVED, f"{root}/a/b") in items, WAIT)
        assert cache.get_children(f"{root}/a") == frozenset()
        assert cache.get_children(root) == frozenset(["a"])
    finally:
        cache.close()


def test_set_partitioner_splits_set_between_members(make_client, path):
    a, b = make_client(), make_client()
    items = ["p0", "p1", "p2", "p3"]
    pa = a.SetPartitioner(f"{path}/part", set=items, identifier="a", time_boundary=0.3)
    pb = b.SetPartitioner(f"{path}/part", set=items, identifier="b", time_boundary=0.3)
    try:
        def settled():
            for p in (pa, pb):
                if p.release:
                    p.release_set()
                if p.failed:
                    pytest.fail("partitioner failed")
            return pa.acquired and pb.acquired

        assert wait_for(settled, WAIT)
        mine_a, mine_b = set(pa), set(pb)
        assert mine_a | mine_b == set(items)
        assert not mine_a & mine_b
        assert len(mine_a) == len(mine_b) == 2
    finally:
        pa.finish()
        pb.finish()
