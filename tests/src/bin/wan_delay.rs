//! `wan_delay` — the latency (and loss) half of the WAN emulator in `tests/wan/wan.sh`.
//!
//!     wan_delay --queue N --delay-ms D [--loss-pct P] [--queue-len L]
//!
//! Binds NFQUEUE N in the current network namespace (run it with `ip netns exec NS`), holds
//! every queued packet's verdict for D ms (the one-way delay of the link; fractions allowed)
//! and then accepts it, in arrival order. With `--loss-pct P` each packet is dropped at once
//! with probability P %. Only the packet's metadata comes to userspace (copy range 0): the
//! kernel keeps the packet meanwhile.
//!
//! The kernel's netem is not available on these hosts, hence this program (see
//! `tests/wan/README.md`). It does not spin. While it holds no packet it sleeps in ppoll(2)
//! on the queue's netlink socket, and the first packet wakes it. While it holds some, it wakes
//! on a fixed 1 ms grid ([`TICK`]) and not on each packet: it reads what arrived since the last
//! wake, takes the middle of that interval for their arrival, and lets out every packet due
//! before the next half tick. A packet's delay is thus the configured one within ±1 ms, and
//! the program wakes at most 1,000 times a second however many packets pass, where waking for
//! each arrival and each verdict (as it first did) cost the delayers of a fleet benchmark two
//! thirds of the CPU all its nodes used, on the same 2 cores (docs/benchmarks.md, "Lab
//! overhead"). ppoll rather than poll for a sub-millisecond timeout, and to take SIGTERM only
//! while sleeping.
//!
//! Prints `wan_delay: queue N delay D ms ready` to stderr once the queue is bound, and a
//! summary line when it exits. SIGTERM/SIGINT/SIGHUP: accepts the packets it still holds and
//! exits 0. Exit status 1 on a runtime error (e.g. the queue is bound by another process),
//! 2 on bad arguments.

use std::{
    collections::VecDeque,
    io,
    os::fd::RawFd,
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use nfq::{Message, Queue, Verdict};

const USAGE: &str =
    "usage: wan_delay --queue N --delay-ms D [--loss-pct P] [--queue-len L (default 10000)]";

/// At most this many packets are read per wake-up before due verdicts are sent again (a
/// 1 ms tick at 1 Gbit/s is ~85 full-size packets).
const MAX_BATCH: usize = 1024;
/// The wake-up grid while packets are held: releases and reads are batched to it.
const TICK: Duration = Duration::from_millis(1);
/// Receive buffer of the netlink socket: a burst must not overflow it (overflow = loss).
const RCVBUF_BYTES: libc::c_int = 16 << 20;

struct Args {
    queue: u16,
    delay: Duration,
    delay_ms: f64,
    loss_pct: f64,
    queue_len: u32,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut queue, mut delay_ms, mut loss_pct, mut queue_len) = (None, None, 0.0, 10_000u32);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--queue" => {
                let v = value("--queue")?;
                queue = Some(v.parse::<u16>().map_err(|e| format!("--queue {v}: {e}"))?);
            }
            "--delay-ms" => {
                let v = value("--delay-ms")?;
                let d = v
                    .parse::<f64>()
                    .map_err(|e| format!("--delay-ms {v}: {e}"))?;
                if !(0.0..=60_000.0).contains(&d) {
                    return Err(format!("--delay-ms {v}: must be 0..=60000"));
                }
                delay_ms = Some(d);
            }
            "--loss-pct" => {
                let v = value("--loss-pct")?;
                loss_pct = v
                    .parse::<f64>()
                    .map_err(|e| format!("--loss-pct {v}: {e}"))?;
                if !(0.0..=100.0).contains(&loss_pct) {
                    return Err(format!("--loss-pct {v}: must be 0..=100"));
                }
            }
            "--queue-len" => {
                let v = value("--queue-len")?;
                queue_len = v
                    .parse::<u32>()
                    .map_err(|e| format!("--queue-len {v}: {e}"))?;
                if queue_len == 0 {
                    return Err("--queue-len must be > 0".into());
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let queue = queue.ok_or("--queue is required")?;
    let delay_ms = delay_ms.ok_or("--delay-ms is required")?;
    Ok(Args {
        queue,
        delay: Duration::from_secs_f64(delay_ms / 1000.0),
        delay_ms,
        loss_pct,
        queue_len,
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("wan_delay: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wan_delay: queue {}: {e}", args.queue);
            ExitCode::from(1)
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Blocks the stop signals (so they can only arrive inside ppoll), installs their handler and
/// returns the signal mask to use while sleeping in ppoll (the old one, minus those signals).
fn setup_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: plain libc signal-mask calls on zero-initialised sigset_t/sigaction values; the
    // handler only stores to an atomic (async-signal-safe).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in STOP_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        for sig in STOP_SIGNALS {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            libc::sigdelset(&mut old, sig);
        }
        Ok(old)
    }
}

fn sockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v/len are valid for writes of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

/// The open NETLINK_NETFILTER sockets of this process. `nfq::Queue` does not expose its
/// socket, and poll needs it: the one that appears across `Queue::open` is the queue's.
fn netfilter_sockets() -> io::Result<Vec<RawFd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        if sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN) == Some(libc::AF_NETLINK)
            && sockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL) == Some(libc::NETLINK_NETFILTER)
        {
            fds.push(fd);
        }
    }
    Ok(fds)
}

/// xorshift64*, seeded from the kernel; only decides which packets a lossy link drops.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let mut seed = 0u64;
        // SAFETY: writes at most 8 bytes into `seed`.
        unsafe { libc::getrandom((&mut seed as *mut u64).cast(), 8, 0) };
        Rng(seed | 1)
    }

    /// Uniform in [0, 100).
    fn percent(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64 * 100.0
    }
}

#[derive(Default)]
struct Stats {
    received: u64,
    accepted: u64,
    dropped: u64,
    /// Errors reported by the kernel, mostly verdicts for packets it already discarded
    /// (ENOENT: the interface went down and its queued packets were flushed).
    errors: u64,
}

impl Stats {
    fn error(&mut self, what: &str, e: &io::Error) {
        self.errors += 1;
        let quiet = e.raw_os_error() == Some(libc::ENOENT);
        if !quiet && (self.errors <= 10 || self.errors.is_power_of_two()) {
            eprintln!("wan_delay: {what}: {e} ({} errors so far)", self.errors);
        }
    }
}

fn send_verdict(queue: &mut Queue, mut msg: Message, verdict: Verdict, stats: &mut Stats) {
    msg.set_verdict(verdict);
    match queue.verdict(msg) {
        Ok(()) if verdict == Verdict::Accept => stats.accepted += 1,
        Ok(()) => stats.dropped += 1,
        Err(e) => stats.error("verdict", &e),
    }
}

/// Wake-up times while packets are held: the points `start + k·tick`.
struct Grid {
    start: Instant,
    tick: Duration,
}

impl Grid {
    fn new(start: Instant, tick: Duration) -> Self {
        Grid { start, tick }
    }

    /// The first grid point strictly after `now`.
    fn next_after(&self, now: Instant) -> Instant {
        let tick = self.tick.as_nanos().max(1);
        let since = now.saturating_duration_since(self.start).as_nanos();
        let k = since / tick + 1;
        self.start + Duration::from_nanos(u64::try_from(k * tick).unwrap_or(u64::MAX))
    }
}

/// When the packets read at `now` arrived, as well as it is known: at `now` if the socket's
/// readiness woke us (we were idle); else somewhere since the last read, taken as the middle
/// (an error of at most half the interval, one tick at most). Never before `last_read`, so
/// stamps never go back and due order stays arrival order.
fn arrival_stamp(idle: bool, last_read: Instant, now: Instant) -> Instant {
    if idle {
        now
    } else {
        last_read + now.saturating_duration_since(last_read) / 2
    }
}

fn run(args: &Args) -> Result<(), String> {
    let sleep_mask = setup_signals().map_err(|e| format!("signal setup: {e}"))?;

    let before = netfilter_sockets().map_err(|e| format!("/proc/self/fd: {e}"))?;
    let mut queue = Queue::open().map_err(|e| format!("open netfilter netlink socket: {e}"))?;
    let after = netfilter_sockets().map_err(|e| format!("/proc/self/fd: {e}"))?;
    let new: Vec<RawFd> = after
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    let [fd] = new[..] else {
        return Err(format!(
            "cannot identify the queue's socket (new netfilter sockets: {new:?})"
        ));
    };

    let q = args.queue;
    queue.bind(q).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EBUSY) {
            " (another process has bound this queue number in this network namespace)"
        } else {
            ""
        };
        format!("bind: {e}{hint}")
    })?;
    // Metadata only: the kernel keeps the packet, we only say when to let it go.
    queue
        .set_copy_range(q, 0)
        .map_err(|e| format!("set copy range: {e}"))?;
    queue
        .set_queue_max_len(q, args.queue_len)
        .map_err(|e| format!("set queue length: {e}"))?;
    // Whole GSO packets (fewer messages), unless dropping one would drop many segments at once.
    queue
        .set_recv_gso(q, args.loss_pct == 0.0)
        .map_err(|e| format!("set GSO: {e}"))?;
    queue.set_nonblocking(true);
    let size = RCVBUF_BYTES;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: fd is our netlink socket; the option value is a c_int.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            break;
        }
    }

    eprintln!("wan_delay: queue {q} delay {} ms ready", args.delay_ms);

    let mut held: VecDeque<(Instant, Message)> = VecDeque::new();
    let mut stats = Stats::default();
    let mut rng = Rng::new();
    let grid = Grid::new(Instant::now(), TICK);
    let mut last_read = Instant::now();
    while !STOP.load(Ordering::SeqCst) {
        // Let out everything due by the next half tick. The delay is constant and arrival
        // stamps never go back, so arrival order = due order.
        let release_by = Instant::now() + grid.tick / 2;
        while held.front().is_some_and(|(due, _)| *due <= release_by) {
            let (_, msg) = held.pop_front().expect("front exists");
            send_verdict(&mut queue, msg, Verdict::Accept, &mut stats);
        }

        // Holding nothing: sleep until a packet arrives (or a stop signal). Holding some:
        // sleep to the next grid point, deaf to arrivals, which wait in the socket meanwhile.
        let idle = held.is_empty();
        let timeout = (!idle).then(|| {
            let now = Instant::now();
            let left = grid.next_after(now).saturating_duration_since(now);
            libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            }
        });
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let (fds, nfds) = if idle {
            (&mut pfd as *mut libc::pollfd, 1)
        } else {
            (std::ptr::null_mut(), 0)
        };
        let timeout_ptr = timeout
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: pfd, timeout and mask outlive the call; nfds is 0 when fds is null.
        let r = unsafe { libc::ppoll(fds, nfds, timeout_ptr, &sleep_mask) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("ppoll: {e}"));
        }

        let now = Instant::now();
        let stamp = arrival_stamp(idle, last_read, now);
        last_read = now;
        for _ in 0..MAX_BATCH {
            match queue.recv() {
                Ok(msg) => {
                    stats.received += 1;
                    if args.loss_pct > 0.0 && rng.percent() < args.loss_pct {
                        send_verdict(&mut queue, msg, Verdict::Drop, &mut stats);
                    } else {
                        held.push_back((stamp + args.delay, msg));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Error replies (e.g. to a verdict for a flushed packet) arrive on the same
                // socket; each recv consumes one message, so carry on with the next.
                Err(e) => stats.error("recv", &e),
            }
        }
    }

    let left = held.len();
    for (_, msg) in held.drain(..) {
        send_verdict(&mut queue, msg, Verdict::Accept, &mut stats);
    }
    eprintln!(
        "wan_delay: queue {q} stopped: {} received, {} accepted ({left} at exit), {} dropped, {} errors",
        stats.received, stats.accepted, stats.dropped, stats.errors
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, String> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn args() {
        let a = parse("--queue 7 --delay-ms 2.5 --loss-pct 1").unwrap();
        assert_eq!(a.queue, 7);
        assert_eq!(a.delay, Duration::from_micros(2500));
        assert_eq!(a.loss_pct, 1.0);
        assert!(parse("--delay-ms 5").is_err());
        assert!(parse("--queue 1").is_err());
        assert!(parse("--queue 70000 --delay-ms 1").is_err());
        assert!(parse("--queue 1 --delay-ms 1 --loss-pct 101").is_err());
        assert!(parse("--queue 1 --delay-ms 1 --bogus").is_err());
    }

    #[test]
    fn grid_points_are_fixed_and_strictly_ahead() {
        let t0 = Instant::now();
        let grid = Grid::new(t0, TICK);
        assert_eq!(grid.next_after(t0), t0 + TICK);
        assert_eq!(grid.next_after(t0 + Duration::from_micros(300)), t0 + TICK);
        // A point itself is not "after" itself: the next one is.
        assert_eq!(grid.next_after(t0 + TICK), t0 + 2 * TICK);
        assert_eq!(
            grid.next_after(t0 + Duration::from_micros(5_999)),
            t0 + 6 * TICK
        );
    }

    #[test]
    fn arrival_is_the_wake_when_idle_else_the_middle_since_the_last_read() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_micros(1_000);
        assert_eq!(arrival_stamp(true, t0, now), now);
        assert_eq!(
            arrival_stamp(false, t0, now),
            t0 + Duration::from_micros(500)
        );
        // Stamps never go back: a later read's stamp is at or after the earlier read.
        let later = arrival_stamp(false, now, now + Duration::from_micros(10));
        assert!(later >= now);
    }

    #[test]
    fn rng_is_uniform_enough() {
        let mut rng = Rng::new();
        let n = 100_000;
        let below = (0..n).filter(|_| rng.percent() < 10.0).count();
        assert!((9_000..11_000).contains(&below), "{below}");
    }
}
