//! One benchmark session: a TCP connection driven by two threads. The sender pipelines up to
//! `--in-flight` requests (paced by `--rate`, or as fast as slots free up); the receiver matches
//! replies in order (ZooKeeper answers a session's requests FIFO), frees slots and hands latency
//! samples to the main thread in batches. Latency runs from each op's intended send time: the
//! actual send in a closed loop, the schedule with `--rate` (no coordinated omission).

use std::collections::VecDeque;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use engine::{code, Acl};
use node::proto::{op, xid, Request, Writer};

use crate::load::{OpsKind, Plan};
use crate::report::OpKind;
use crate::wire::{read_reply, write_request, IO_BUFFER_BYTES};

/// A sender with nothing to send for this long pings, as ZooKeeper's clients do at timeout/3.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Latency samples a receiver gathers before handing them over...
const SAMPLE_BATCH: usize = 256;
/// ...or after this long, so progress lines stay current at low rates.
const SAMPLE_FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Longest sleep of a paced sender, so that the end of a run or a dead session is noticed.
const PACING_SLICE: Duration = Duration::from_millis(100);
/// Stack of each session thread: they hold only a few buffers.
const THREAD_STACK_BYTES: usize = 256 * 1024;

/// The run's clock and stop signal, shared by every session thread.
pub(crate) struct Clock {
    pub start: Instant,
    pub measure_start: Instant,
    /// The end of the measured window: no op intended at or after it is sent.
    pub deadline: Instant,
    pub stop: AtomicBool,
    /// Measured ops issued so far, for `--ops`.
    pub issued: AtomicU64,
    /// Ops of a `--rate` schedule that fell in the measured window but were never sent, because
    /// the server fell so far behind that the run's drain grace ran out.
    pub unsent: AtomicU64,
}

/// What a reply answers.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Op(OpKind),
    Ping,
    Close,
}

/// A request written and not answered yet.
struct Pending {
    xid: i32,
    expect: Expect,
    intended: Instant,
    measured: bool,
}

/// One answered (or failed) op, as a receiver reports it.
pub(crate) struct Sample {
    pub kind: OpKind,
    pub err: i32,
    pub latency_us: u64,
    pub measured: bool,
    pub completed: Instant,
}

/// A small, fast PRNG (splitmix64): key choice only needs to be uniform and cheap.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Makes a session's ops.
pub(crate) struct OpGen {
    plan: Arc<Plan>,
    session: usize,
    seq: u64,
    rng: Rng,
    acl: Vec<Acl>,
}

impl OpGen {
    pub(crate) fn new(plan: Arc<Plan>, session: usize) -> OpGen {
        let seed = u64::from(std::process::id()) << 32 | session as u64;
        OpGen { plan, session, seq: 0, rng: Rng(seed), acl: engine::acl::open_acl_unsafe() }
    }

    fn random_key(&mut self) -> String {
        let i = self.rng.below(self.plan.keys);
        self.plan.key(i)
    }

    fn get(&mut self) -> (OpKind, i32, Request) {
        (OpKind::Get, op::GET_DATA, Request::GetData { path: self.random_key(), watch: false })
    }

    fn set(&mut self) -> (OpKind, i32, Request) {
        let path = self.random_key();
        (OpKind::Set, op::SET_DATA, Request::SetData { path, data: self.plan.value.clone(), version: -1 })
    }

    fn create(&self, path: String) -> Request {
        Request::Create {
            path,
            data: self.plan.value.clone(),
            acl: self.acl.clone(),
            flags: node::proto::create_flags::PERSISTENT,
            ttl: -1,
        }
    }

    fn next(&mut self) -> (OpKind, i32, Request) {
        match self.plan.kind {
            OpsKind::Get => self.get(),
            OpsKind::Set => self.set(),
            OpsKind::Mixed if self.rng.below(100) < self.plan.read_pct => self.get(),
            OpsKind::Mixed => self.set(),
            OpsKind::CreateDelete => {
                // Creates and deletes alternate; the session's FIFO order puts each delete after
                // its create, so neither fails.
                let path = format!("{}/c{}-{}", self.plan.prefix, self.session, self.seq / 2);
                let first = self.seq.is_multiple_of(2);
                self.seq += 1;
                if first {
                    (OpKind::Create, op::CREATE, self.create(path))
                } else {
                    (OpKind::Delete, op::DELETE, Request::Delete { path, version: -1 })
                }
            }
            OpsKind::Multi => {
                let path = format!("{}/m{}-{}", self.plan.prefix, self.session, self.seq);
                self.seq += 1;
                let key = self.random_key();
                let ops = vec![
                    (op::CREATE, self.create(path.clone())),
                    (op::SET_DATA, Request::SetData { path: key, data: self.plan.value.clone(), version: -1 }),
                    (op::DELETE, Request::Delete { path, version: -1 }),
                ];
                (OpKind::Multi, op::MULTI, Request::Multi(ops))
            }
        }
    }
}

/// A session's sending half: paces (with `--rate`), takes an in-flight slot, registers the
/// request with the receiver, then writes it. Writes are coalesced: the buffer goes out when
/// the next op must wait (no free slot, or not yet due), so a burst of freed slots costs one
/// syscall.
struct SessionSender {
    plan: Arc<Plan>,
    clock: Arc<Clock>,
    dead: Arc<AtomicBool>,
    out: BufWriter<TcpStream>,
    slots: Receiver<()>,
    pending: Sender<Pending>,
    gen: OpGen,
    scratch: Writer,
    next_xid: i32,
    last_write: Instant,
}

impl SessionSender {
    fn xid(&mut self) -> i32 {
        let x = self.next_xid;
        // Positive xids only: negative ones are reserved (pings, events, auth).
        self.next_xid = if x == i32::MAX { 1 } else { x + 1 };
        x
    }

    fn halted(&self) -> bool {
        self.clock.stop.load(Ordering::Relaxed) || self.dead.load(Ordering::Relaxed)
    }

    /// Sends a ping when the session has been quiet for a while, so it does not expire.
    fn keep_alive(&mut self) -> io::Result<()> {
        if self.last_write.elapsed() < PING_EVERY {
            return Ok(());
        }
        let p = Pending { xid: xid::PING, expect: Expect::Ping, intended: Instant::now(), measured: false };
        if self.pending.send(p).is_err() {
            return Err(io::Error::other("receiver gone"));
        }
        write_request(&mut self.out, &mut self.scratch, xid::PING, op::PING, &Request::Ping)?;
        self.out.flush()?;
        self.last_write = Instant::now();
        Ok(())
    }

    /// Waits until `due`, flushing first; false when the run ended meanwhile.
    fn pace(&mut self, due: Instant) -> io::Result<bool> {
        self.out.flush()?;
        loop {
            let now = Instant::now();
            if now >= due {
                return Ok(true);
            }
            if self.halted() {
                return Ok(false);
            }
            self.keep_alive()?;
            thread::sleep((due - now).min(PACING_SLICE));
        }
    }

    /// Takes an in-flight slot, flushing first if none is free; false when the run ended.
    fn take_slot(&mut self) -> io::Result<bool> {
        match self.slots.try_recv() {
            Ok(()) => return Ok(true),
            Err(TryRecvError::Disconnected) => return Ok(false),
            Err(TryRecvError::Empty) => {}
        }
        self.out.flush()?;
        loop {
            match self.slots.recv_timeout(PACING_SLICE) {
                Ok(()) => return Ok(true),
                Err(RecvTimeoutError::Disconnected) => return Ok(false),
                Err(RecvTimeoutError::Timeout) if self.halted() => return Ok(false),
                Err(RecvTimeoutError::Timeout) => self.keep_alive()?,
            }
        }
    }

    /// With `--rate`, counts the ops from `from` on that the schedule put in the measured window
    /// and that are not going to be sent: the run ended (its grace past the window ran out)
    /// before a far-behind server let them go.
    fn count_unsent(&self, from: Instant) {
        let Some(iv) = self.plan.interval else { return };
        if self.dead.load(Ordering::Relaxed) || Instant::now() < self.clock.deadline {
            return;
        }
        let first = from.max(self.clock.measure_start);
        if first < self.clock.deadline {
            let n = (self.clock.deadline - first).as_secs_f64() / iv.as_secs_f64();
            self.clock.unsent.fetch_add(n.ceil() as u64, Ordering::Relaxed);
        }
    }

    fn run(mut self) {
        if let Err(e) = self.send_all() {
            // The receiver sees the shut socket and fails what is outstanding.
            self.dead.store(true, Ordering::Relaxed);
            let _ = self.out.get_ref().shutdown(Shutdown::Both);
            if !self.clock.stop.load(Ordering::Relaxed) {
                eprintln!("paddock bench load: session lost while sending: {e}");
            }
        }
    }

    fn send_all(&mut self) -> io::Result<()> {
        let start = self.clock.start;
        let mut due = match self.plan.interval {
            // Sessions start staggered across one interval, so a rate is a steady stream.
            Some(iv) => start + iv.mul_f64(self.gen.session as f64 / self.plan.sessions as f64),
            None => start,
        };
        loop {
            if self.halted() {
                self.count_unsent(due);
                break;
            }
            let intended = match self.plan.interval {
                Some(iv) => {
                    let t = due;
                    if t >= self.clock.deadline {
                        break;
                    }
                    if !self.pace(t)? || !self.take_slot()? {
                        self.count_unsent(t);
                        break;
                    }
                    due += iv;
                    t
                }
                None => {
                    if !self.take_slot()? {
                        break;
                    }
                    Instant::now()
                }
            };
            if intended >= self.clock.deadline {
                break;
            }
            let measured = intended >= self.clock.measure_start;
            if let (true, Some(limit)) = (measured, self.plan.ops_limit) {
                if self.clock.issued.fetch_add(1, Ordering::Relaxed) >= limit {
                    self.clock.stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
            let (kind, opcode, req) = self.gen.next();
            let x = self.xid();
            if self.pending.send(Pending { xid: x, expect: Expect::Op(kind), intended, measured }).is_err() {
                break;
            }
            write_request(&mut self.out, &mut self.scratch, x, opcode, &req)?;
            self.last_write = Instant::now();
        }
        if !self.dead.load(Ordering::Relaxed) {
            let x = self.xid();
            let p = Pending { xid: x, expect: Expect::Close, intended: Instant::now(), measured: false };
            if self.pending.send(p).is_ok() {
                write_request(&mut self.out, &mut self.scratch, x, op::CLOSE_SESSION, &Request::CloseSession)?;
            }
        }
        self.out.flush()
    }
}

/// A session's receiving half: matches each reply to the oldest request outstanding, frees its
/// slot and reports its latency.
struct SessionReceiver {
    dead: Arc<AtomicBool>,
    input: BufReader<TcpStream>,
    slots: Option<Sender<()>>,
    pending: Receiver<Pending>,
    samples: SyncSender<Vec<Sample>>,
    batch: Vec<Sample>,
    last_flush: Instant,
}

impl SessionReceiver {
    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let b = std::mem::replace(&mut self.batch, Vec::with_capacity(SAMPLE_BATCH));
            let _ = self.samples.send(b);
        }
        self.last_flush = Instant::now();
    }

    fn run(mut self) {
        let mut queue: VecDeque<Pending> = VecDeque::new();
        let mut frame = Vec::new();
        let failure = loop {
            while let Ok(p) = self.pending.try_recv() {
                queue.push_back(p);
            }
            if queue.is_empty() {
                self.flush();
                match self.pending.recv() {
                    Ok(p) => queue.push_back(p),
                    // The sender is done and everything it sent is answered.
                    Err(_) => break None,
                }
            }
            let header = match read_reply(&mut self.input, &mut frame) {
                Ok(h) => h,
                // Every op answered and the session closing: a server may close without a reply.
                Err(_) if queue.len() == 1 && matches!(queue[0].expect, Expect::Close) => break None,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    break Some(code::OPERATION_TIMEOUT)
                }
                Err(_) => break Some(code::CONNECTION_LOSS),
            };
            let now = Instant::now();
            if header.xid == xid::NOTIFICATION {
                continue;
            }
            // Pings may be answered out of band; everything else strictly in order.
            let at = if header.xid == xid::PING {
                queue.iter().position(|p| matches!(p.expect, Expect::Ping))
            } else {
                queue.iter().position(|p| !matches!(p.expect, Expect::Ping)).filter(|&i| queue[i].xid == header.xid)
            };
            let Some(p) = at.and_then(|i| queue.remove(i)) else {
                eprintln!("paddock bench load: reply with xid {} out of order; ending the session", header.xid);
                break Some(code::RUNTIME_INCONSISTENCY);
            };
            match p.expect {
                Expect::Ping => {}
                Expect::Close => break None,
                Expect::Op(kind) => {
                    let latency_us =
                        u64::try_from(now.saturating_duration_since(p.intended).as_micros()).unwrap_or(u64::MAX);
                    self.batch.push(Sample { kind, err: header.err, latency_us, measured: p.measured, completed: now });
                    if let Some(s) = &self.slots {
                        let _ = s.send(());
                    }
                    if self.batch.len() >= SAMPLE_BATCH || now.duration_since(self.last_flush) >= SAMPLE_FLUSH_EVERY {
                        self.flush();
                    }
                }
            }
        };
        if let Some(err) = failure {
            self.dead.store(true, Ordering::Relaxed);
            let _ = self.input.get_ref().shutdown(Shutdown::Both);
            // Wakes a sender waiting for a slot; it then stops and drops its end of `pending`.
            self.slots = None;
            let now = Instant::now();
            let lost = queue.into_iter().chain(self.pending.iter());
            for p in lost {
                if let Expect::Op(kind) = p.expect {
                    self.batch.push(Sample { kind, err, latency_us: 0, measured: p.measured, completed: now });
                }
            }
        }
        self.flush();
    }
}

/// A running session: its two threads, and whether its connection failed.
pub(crate) struct Session {
    pub dead: Arc<AtomicBool>,
    pub threads: [JoinHandle<()>; 2],
}

/// Starts the two threads of session `index` on an established session's `stream`.
pub(crate) fn start(
    index: usize,
    stream: TcpStream,
    plan: &Arc<Plan>,
    clock: &Arc<Clock>,
    samples: &SyncSender<Vec<Sample>>,
) -> io::Result<Session> {
    let input = stream.try_clone()?;
    let (slots_tx, slots_rx) = mpsc::channel();
    for _ in 0..plan.in_flight {
        let _ = slots_tx.send(());
    }
    let (pending_tx, pending_rx) = mpsc::channel();
    let dead = Arc::new(AtomicBool::new(false));
    let sender = SessionSender {
        plan: plan.clone(),
        clock: clock.clone(),
        dead: dead.clone(),
        out: BufWriter::with_capacity(IO_BUFFER_BYTES, stream),
        slots: slots_rx,
        pending: pending_tx,
        gen: OpGen::new(plan.clone(), index),
        scratch: Writer::default(),
        next_xid: 1,
        last_write: Instant::now(),
    };
    let receiver = SessionReceiver {
        dead: dead.clone(),
        input: BufReader::with_capacity(IO_BUFFER_BYTES, input),
        slots: Some(slots_tx),
        pending: pending_rx,
        samples: samples.clone(),
        batch: Vec::with_capacity(SAMPLE_BATCH),
        last_flush: Instant::now(),
    };
    let builder = || thread::Builder::new().stack_size(THREAD_STACK_BYTES);
    let recv = builder().name(format!("bench-recv-{index}")).spawn(move || receiver.run())?;
    let send = builder().name(format!("bench-send-{index}")).spawn(move || sender.run())?;
    Ok(Session { dead, threads: [recv, send] })
}
