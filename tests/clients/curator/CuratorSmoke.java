// Smoke test of Apache Curator (the Java ZooKeeper client + recipes) against a
// running ZooKeeper-compatible server.
//
//   java CuratorSmoke HOST:PORT
//
// Steps (one line printed per step): connect, create with parents, read back,
// set/read, InterProcessMutex exclusion between two sessions, LeaderLatch
// election and fail-over between two sessions, cleanup.  Every wait has a
// deadline (env CLIENT_TIMEOUT seconds, default 20) and the whole run has a
// watchdog.  Exit code 0 on success, 1 on failure.

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.data.Stat;

public class CuratorSmoke {
    static final String TAG = "curator";
    static final long TIMEOUT_S = Long.parseLong(envOr("CLIENT_TIMEOUT", "20"));
    static final long START = System.nanoTime();
    static final List<String> connectionProblems = new CopyOnWriteArrayList<>();
    static volatile boolean expectDisconnect = false;

    static String envOr(String k, String d) {
        String v = System.getenv(k);
        return v == null || v.isEmpty() ? d : v;
    }

    static long ms(long sinceNanos) {
        return (System.nanoTime() - sinceNanos) / 1_000_000;
    }

    static void step(String what, long t0) {
        System.out.printf("%s: %-58s ok (%d ms)%n", TAG, what, ms(t0));
        System.out.flush();
    }

    static class SmokeFailure extends RuntimeException {
        SmokeFailure(String m) { super(m); }
    }

    static void check(boolean cond, String msg) {
        if (!cond) throw new SmokeFailure(msg);
    }

    static CuratorFramework newClient(String hostPort, String name) {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(hostPort)
                .retryPolicy(new ExponentialBackoffRetry(100, 5))
                .sessionTimeoutMs(30_000) // the server may negotiate it down
                .connectionTimeoutMs((int) Math.min(TimeUnit.SECONDS.toMillis(TIMEOUT_S), 15_000))
                .build();
        c.getConnectionStateListenable().addListener((client, state) -> {
            if (state == ConnectionState.SUSPENDED && expectDisconnect) {
                System.out.println(TAG + ": (client " + name + " SUSPENDED, as intended)");
            } else if (state == ConnectionState.SUSPENDED || state == ConnectionState.LOST) {
                String m = "client " + name + " connection state " + state;
                connectionProblems.add(m);
                System.out.println(TAG + ": WARNING " + m);
            }
        });
        return c;
    }

    static void connect(CuratorFramework c, String name) throws Exception {
        long t0 = System.nanoTime();
        c.start();
        check(c.blockUntilConnected((int) TIMEOUT_S, TimeUnit.SECONDS),
                "client " + name + " did not connect within " + TIMEOUT_S + " s");
        long sid = c.getZookeeperClient().getZooKeeper().getSessionId();
        check(sid != 0, "client " + name + " got session id 0");
        step(String.format("client %s connected, session 0x%x", name, sid), t0);
    }

    public static void main(String[] args) {
        if (args.length != 1 || !args[0].contains(":")) {
            System.err.println("usage: CuratorSmoke HOST:PORT");
            System.exit(2);
        }
        String hostPort = args[0];

        // Watchdog: nothing below may hang the test run.
        long overall = TIMEOUT_S * 8 + 30;
        Thread dog = new Thread(() -> {
            try {
                Thread.sleep(TimeUnit.SECONDS.toMillis(overall));
            } catch (InterruptedException e) {
                return;
            }
            System.out.println(TAG + ": FAIL: overall watchdog expired after " + overall + " s");
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }, "watchdog");
        dog.setDaemon(true);
        dog.start();

        int rc;
        try {
            run(hostPort);
            System.out.printf("%s: PASS (%d ms total)%n", TAG, ms(START));
            rc = 0;
        } catch (SmokeFailure e) {
            System.out.println(TAG + ": FAIL: " + e.getMessage());
            rc = 1;
        } catch (Throwable e) {
            System.out.println(TAG + ": FAIL: unexpected " + e);
            e.printStackTrace(System.out);
            rc = 1;
        }
        System.out.flush();
        // Curator/ZooKeeper leave non-daemon threads behind on some failure paths.
        Runtime.getRuntime().halt(rc);
    }

    static void run(String hostPort) throws Exception {
        String base = "/paddock-curator-smoke-" + ProcessHandle.current().pid() + "-"
                + ThreadLocalRandom.current().nextInt(1_000_000);
        System.out.println(TAG + ": server=" + hostPort + " base=" + base
                + " timeout=" + TIMEOUT_S + "s");

        CuratorFramework a = newClient(hostPort, "A");
        CuratorFramework b = newClient(hostPort, "B");
        try {
            connect(a, "A");
            connect(b, "B");
            basicOps(a, b, base);
            reconnect(a, b, base + "/x/y/node");
            mutex(a, b, base + "/mutex");
            leaderLatch(a, b, base + "/latch");

            long t0 = System.nanoTime();
            a.delete().deletingChildrenIfNeeded().forPath(base);
            check(a.checkExists().forPath(base) == null, base + " still exists after delete");
            check(b.checkExists().forPath(base) == null, base + " still visible to B after delete");
            step("delete " + base + " deletingChildrenIfNeeded", t0);

            check(connectionProblems.isEmpty(), "connection problems: " + connectionProblems);
        } finally {
            try {
                if (a.getZookeeperClient().isConnected()
                        && a.checkExists().forPath(base) != null) {
                    a.delete().deletingChildrenIfNeeded().forPath(base);
                }
            } catch (Exception e) {
                System.out.println(TAG + ": (cleanup of " + base + " failed: " + e + ")");
            }
            long t0 = System.nanoTime();
            b.close();
            a.close();
            step("clients closed", t0);
        }
    }

    static void basicOps(CuratorFramework a, CuratorFramework b, String base) throws Exception {
        String path = base + "/x/y/node";
        byte[] data = "hello from curator".getBytes(StandardCharsets.UTF_8);

        long t0 = System.nanoTime();
        String created = a.create().creatingParentsIfNeeded().forPath(path, data);
        check(path.equals(created), "create returned " + created + ", expected " + path);
        step("create " + path + " creatingParentsIfNeeded", t0);

        t0 = System.nanoTime();
        Stat stat = new Stat();
        byte[] got = a.getData().storingStatIn(stat).forPath(path);
        check(Arrays.equals(data, got), "getData returned '"
                + new String(got, StandardCharsets.UTF_8) + "'");
        check(stat.getVersion() == 0, "new node has version " + stat.getVersion());
        check(stat.getDataLength() == data.length, "stat dataLength " + stat.getDataLength());
        check(stat.getCzxid() != 0 && stat.getCzxid() == stat.getMzxid(),
                "new node czxid/mzxid " + stat.getCzxid() + "/" + stat.getMzxid());
        check(stat.getEphemeralOwner() == 0, "persistent node has ephemeralOwner");
        step("getData " + path + " (data, version 0)", t0);

        t0 = System.nanoTime();
        for (String p : new String[] {base, base + "/x", base + "/x/y"}) {
            Stat s = b.checkExists().forPath(p);
            check(s != null, "parent " + p + " was not created");
            check(s.getEphemeralOwner() == 0, "parent " + p + " is ephemeral");
        }
        List<String> kids = b.getChildren().forPath(base + "/x/y");
        check(kids.equals(List.of("node")), "children of " + base + "/x/y: " + kids);
        step("parents exist, getChildren from client B", t0);

        t0 = System.nanoTime();
        byte[] data2 = "v2".getBytes(StandardCharsets.UTF_8);
        Stat s2 = a.setData().withVersion(0).forPath(path, data2);
        check(s2.getVersion() == 1, "version after setData " + s2.getVersion());
        b.sync().forPath(path);
        byte[] got2 = b.getData().forPath(path);
        check(Arrays.equals(data2, got2), "B read '" + new String(got2, StandardCharsets.UTF_8)
                + "' after setData");
        boolean badVersion = false;
        try {
            a.setData().withVersion(0).forPath(path, data2);
        } catch (org.apache.zookeeper.KeeperException.BadVersionException e) {
            badVersion = true;
        }
        check(badVersion, "setData with a stale version did not fail with BadVersion");
        step("setData (versioned), sync + getData from B, stale version rejected", t0);
    }

    // Drop B's TCP connection (not its session) while B has a data watch set:
    // the client must reconnect with the same session id, re-register the
    // watch (setWatches) and still receive the event.
    static void reconnect(CuratorFramework a, CuratorFramework b, String path) throws Exception {
        long t0 = System.nanoTime();
        long sid = b.getZookeeperClient().getZooKeeper().getSessionId();
        java.util.concurrent.CountDownLatch fired = new java.util.concurrent.CountDownLatch(1);
        List<String> seen = new CopyOnWriteArrayList<>();
        b.getData().usingWatcher((org.apache.curator.framework.api.CuratorWatcher) ev -> {
            // the client also hands connection-state changes (type None) to
            // every registered watcher; only node events count here
            if (ev.getType() == org.apache.zookeeper.Watcher.Event.EventType.None) return;
            seen.add(ev.getType() + " " + ev.getPath());
            if (ev.getType() == org.apache.zookeeper.Watcher.Event.EventType.NodeDataChanged) {
                fired.countDown();
            }
        }).forPath(path);

        java.util.concurrent.CountDownLatch reconnected = new java.util.concurrent.CountDownLatch(1);
        List<ConnectionState> states = new CopyOnWriteArrayList<>();
        org.apache.curator.framework.state.ConnectionStateListener l = (client, state) -> {
            states.add(state);
            if (state == ConnectionState.RECONNECTED) reconnected.countDown();
        };
        b.getConnectionStateListenable().addListener(l);
        expectDisconnect = true;
        try {
            dropConnection(b.getZookeeperClient().getZooKeeper());
            check(reconnected.await(TIMEOUT_S, TimeUnit.SECONDS),
                    "B did not reconnect within " + TIMEOUT_S + " s after its socket was closed; states "
                    + states);
        } finally {
            b.getConnectionStateListenable().removeListener(l);
            expectDisconnect = false;
        }
        long sid2 = b.getZookeeperClient().getZooKeeper().getSessionId();
        check(sid == sid2, String.format("B's session changed on reconnect: 0x%x -> 0x%x", sid, sid2));
        check(!states.contains(ConnectionState.LOST), "B's session was lost: " + states);
        step(String.format("reconnect: B's socket dropped, resumed session 0x%x", sid2), t0);

        t0 = System.nanoTime();
        check(seen.isEmpty(), "B's watch fired early: " + seen);
        a.setData().forPath(path, "v3".getBytes(StandardCharsets.UTF_8));
        check(fired.await(TIMEOUT_S, TimeUnit.SECONDS), "B's data watch (set before the reconnect) "
                + "did not fire within " + TIMEOUT_S + " s after A's setData; events " + seen);
        step("reconnect: watch set before the reconnect fired (setWatches)", t0);
    }

    // ZooKeeper's client has a test hook that closes the socket but keeps the
    // session; it is package-private, so reach it by reflection.
    static void dropConnection(org.apache.zookeeper.ZooKeeper zk) throws Exception {
        java.lang.reflect.Field cnxnF = org.apache.zookeeper.ZooKeeper.class.getDeclaredField("cnxn");
        cnxnF.setAccessible(true);
        Object cnxn = cnxnF.get(zk);
        java.lang.reflect.Field stF = cnxn.getClass().getDeclaredField("sendThread");
        stF.setAccessible(true);
        Object st = stF.get(cnxn);
        java.lang.reflect.Method close = st.getClass().getDeclaredMethod("testableCloseSocket");
        close.setAccessible(true);
        close.invoke(st);
    }

    static void mutex(CuratorFramework a, CuratorFramework b, String lockPath) throws Exception {
        InterProcessMutex ma = new InterProcessMutex(a, lockPath);
        InterProcessMutex mb = new InterProcessMutex(b, lockPath);

        // 1. Deterministic exclusion: while A holds the lock B cannot get it;
        //    B's blocked acquire completes only once A releases.
        long t0 = System.nanoTime();
        check(ma.acquire(TIMEOUT_S, TimeUnit.SECONDS), "A could not acquire a free mutex");
        check(ma.isAcquiredInThisProcess(), "A's mutex not marked acquired");
        step("mutex: A acquired", t0);

        t0 = System.nanoTime();
        check(!mb.acquire(300, TimeUnit.MILLISECONDS), "B acquired the mutex while A held it");
        step("mutex: B's 300 ms acquire timed out while A holds it", t0);

        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            t0 = System.nanoTime();
            // Curator mutexes are bound to the acquiring thread: acquire and
            // release B's on the same pool thread.
            Future<Boolean> bWaits = pool.submit(() -> {
                if (!mb.acquire(TIMEOUT_S, TimeUnit.SECONDS)) return false;
                boolean held = mb.isAcquiredInThisProcess();
                mb.release();
                return held;
            });
            // wait until B's lock node is queued behind A's
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            Collection<String> parts;
            while ((parts = ma.getParticipantNodes()).size() < 2) {
                check(System.nanoTime() < deadline, "B's lock node never appeared: " + parts);
                Thread.sleep(10);
            }
            Thread.sleep(200);
            check(!bWaits.isDone(), "B's acquire returned while A still holds the mutex");
            ma.release();
            check(bWaits.get(TIMEOUT_S, TimeUnit.SECONDS), "B did not get the mutex after A released it");
            step("mutex: B queued (2 participants), got it after A released", t0);

            // 2. Contention: both sessions loop acquire/release; a shared counter
            //    must never see two holders.
            t0 = System.nanoTime();
            final int rounds = 5;
            AtomicInteger holders = new AtomicInteger();
            AtomicInteger maxHolders = new AtomicInteger();
            AtomicInteger total = new AtomicInteger();
            CyclicBarrier go = new CyclicBarrier(2);
            List<Future<Void>> fs = new ArrayList<>();
            for (InterProcessMutex m : new InterProcessMutex[] {ma, mb}) {
                fs.add(pool.submit(() -> {
                    try {
                        go.await(TIMEOUT_S, TimeUnit.SECONDS);
                    } catch (BrokenBarrierException e) {
                        throw new SmokeFailure("barrier broken");
                    }
                    for (int i = 0; i < rounds; i++) {
                        if (!m.acquire(TIMEOUT_S, TimeUnit.SECONDS)) {
                            throw new SmokeFailure("acquire timed out under contention");
                        }
                        try {
                            int h = holders.incrementAndGet();
                            maxHolders.accumulateAndGet(h, Math::max);
                            Thread.sleep(20);
                            total.incrementAndGet();
                            holders.decrementAndGet();
                        } finally {
                            m.release();
                        }
                    }
                    return null;
                }));
            }
            for (Future<Void> f : fs) {
                try {
                    f.get(TIMEOUT_S * 2, TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException e) {
                    if (e.getCause() instanceof SmokeFailure) throw (SmokeFailure) e.getCause();
                    throw e;
                }
            }
            check(maxHolders.get() == 1, "mutual exclusion violated: " + maxHolders.get()
                    + " holders at once");
            check(total.get() == 2 * rounds, "only " + total.get() + " of " + 2 * rounds
                    + " critical sections ran");
            step("mutex: 2 sessions x " + rounds + " rounds, never 2 holders", t0);
        } finally {
            pool.shutdownNow();
        }

        t0 = System.nanoTime();
        Collection<String> left = ma.getParticipantNodes();
        check(left.isEmpty(), "lock nodes left after release: " + left);
        step("mutex: no lock nodes left", t0);
    }

    static void leaderLatch(CuratorFramework a, CuratorFramework b, String latchPath)
            throws Exception {
        LeaderLatch la = new LeaderLatch(a, latchPath, "A");
        LeaderLatch lb = new LeaderLatch(b, latchPath, "B");
        boolean laOpen = true, lbOpen = true;
        try {
            long t0 = System.nanoTime();
            la.start();
            lb.start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            while (!la.hasLeadership() && !lb.hasLeadership()) {
                check(System.nanoTime() < deadline, "no LeaderLatch became leader within "
                        + TIMEOUT_S + " s");
                Thread.sleep(10);
            }
            Thread.sleep(300); // give a wrong second leader time to show up
            check(la.hasLeadership() ^ lb.hasLeadership(), "expected exactly one leader, A="
                    + la.hasLeadership() + " B=" + lb.hasLeadership());
            LeaderLatch leader = la.hasLeadership() ? la : lb;
            LeaderLatch other = leader == la ? lb : la;
            check(la.getLeader().getId().equals(leader.getId())
                    && lb.getLeader().getId().equals(leader.getId()),
                    "latches disagree on the leader: A says " + la.getLeader().getId()
                    + ", B says " + lb.getLeader().getId() + ", actual " + leader.getId());
            check(la.getParticipants().size() == 2, "participants: " + la.getParticipants());
            step("latch: exactly one leader (" + leader.getId() + "), both agree, 2 participants", t0);

            t0 = System.nanoTime();
            leader.close();
            if (leader == la) laOpen = false; else lbOpen = false;
            check(other.await(TIMEOUT_S, TimeUnit.SECONDS), "latch " + other.getId()
                    + " did not take over within " + TIMEOUT_S + " s after the leader closed");
            check(other.hasLeadership(), other.getId() + " lost leadership right away");
            check(other.getLeader().getId().equals(other.getId()), "getLeader after failover: "
                    + other.getLeader().getId());
            check(other.getParticipants().size() == 1, "participants after close: "
                    + other.getParticipants());
            step("latch: leader " + leader.getId() + " closed, " + other.getId() + " took over", t0);

            t0 = System.nanoTime();
            other.close();
            if (other == la) laOpen = false; else lbOpen = false;
            // LeaderLatch.close() deletes its node in the background: poll.
            List<String> kids;
            long deadline2 = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            while (!(kids = a.getChildren().forPath(latchPath)).isEmpty()) {
                check(System.nanoTime() < deadline2, "latch nodes left " + TIMEOUT_S
                        + " s after close: " + kids);
                Thread.sleep(10);
            }
            step("latch: closed, no latch nodes left", t0);
        } finally {
            if (laOpen) try { la.close(); } catch (Exception ignored) { }
            if (lbOpen) try { lb.close(); } catch (Exception ignored) { }
        }
    }
}
