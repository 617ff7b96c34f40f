//! Keeps the CPUs awake for a moment after the server last did something.
//!
//! A request's path crosses threads several times (the connection's worker,
//! the log's flush thread, the worker again, the client), and each crossing
//! that lands on an idle CPU waits for that CPU to come out of its halt. In a
//! virtual machine without a polling idle driver (`cpuidle` "none", as on
//! this Firecracker guest) every halt is an exit to the hypervisor, and the
//! wake-ups were most of one client's put latency: with a spinning
//! lowest-priority process per CPU, put/1 went from about 2,200/s to about
//! 4,000/s here (BENCHMARKS.md, "Keeping the CPUs awake").
//!
//! So for `--idle-spin-us` after a worker thread last parked or woke, one
//! thread per CPU (at most 8) spins instead of letting its CPU halt. They run
//! under `SCHED_IDLE`: any thread of ours, or of a process in the same
//! cgroup, that becomes runnable on that CPU takes it at once, and the
//! scheduler counts such a CPU as idle when it places a woken thread. Once
//! the window passes they sleep until a worker next falls idle.
//!
//! The price: CPU time on an otherwise idle machine (a server that hears
//! from clients more often than once per window spins its idle CPUs the
//! whole time); on hosts whose cgroups share CPU by weight, a share taken
//! from CPU-bound neighbours in other cgroups while the spinners run; on
//! SMT cores, a busy sibling slowed a little. Off by default under a CPU
//! quota smaller than the CPUs, where it would spend the quota.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Spinning threads at most, so a large machine does not spin dozens of
/// CPUs; the gain was measured on two, and the first eight CPUs are taken.
const MAX_SPINNERS: usize = 8;

/// Long enough to cover the fdatasync and the hand-offs of one request, and
/// a client's turn-around before its next one: one client's puts ran fastest
/// with 100–400 µs here, and 1 ms made their p99 twice as long.
pub const DEFAULT_WINDOW: Duration = Duration::from_micros(200);

pub struct Warm {
    start: Instant,
    window: u64,
    /// Nanoseconds since `start` until which the spinners keep going.
    until: AtomicU64,
    /// Set by a spinner about to park. Parking and unparking take no lock:
    /// a starved SCHED_IDLE thread holding one would stall the worker that
    /// wants to wake it.
    asleep: AtomicBool,
    spinners: OnceLock<Vec<Thread>>,
}

impl Warm {
    /// Starts the spinners, one pinned to each CPU this process may run on,
    /// and returns what the runtime's park and unpark hooks call. None when
    /// the window (`--idle-spin-us`) is zero or no spinner could start.
    pub fn start(asked_us: Option<u32>) -> Option<Arc<Warm>> {
        let cpus = allowed_cpus();
        let window = match asked_us {
            Some(us) => Duration::from_micros(us.into()),
            // std counts a cgroup's CPU quota (a container's CPU limit): under
            // a quota smaller than the CPUs, spinning would spend the quota
            // that requests need, and the scheduler would then throttle them.
            None if std::thread::available_parallelism().map_or(true, |n| n.get() < cpus.len()) => {
                tracing::info!("a CPU quota is set: the idle CPUs do not spin (--idle-spin-us)");
                Duration::ZERO
            }
            None => DEFAULT_WINDOW,
        };
        if window.is_zero() {
            return None;
        }
        let warm = Arc::new(Warm {
            start: Instant::now(),
            window: window.as_nanos() as u64,
            until: AtomicU64::new(0),
            asleep: AtomicBool::new(true),
            spinners: OnceLock::new(),
        });
        let (pinned_tx, pinned) = std::sync::mpsc::channel();
        let mut spinners = Vec::new();
        for cpu in cpus.into_iter().take(MAX_SPINNERS) {
            let (w, pinned_tx) = (warm.clone(), pinned_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("synod-warm-{cpu}"))
                .spawn(move || {
                    let ok = pin_idle(cpu);
                    let _ = pinned_tx.send(ok);
                    drop(pinned_tx);
                    if ok {
                        w.spin();
                    }
                });
            match spawned {
                Ok(handle) => spinners.push(handle.thread().clone()),
                Err(e) => tracing::warn!("cannot start a spinning thread: {e}"),
            }
        }
        drop(pinned_tx);
        let pinned = pinned.iter().take(spinners.len()).filter(|&ok| ok).count();
        if pinned < spinners.len() {
            tracing::warn!(
                "{} of {} spinning threads could not be pinned under SCHED_IDLE and do not spin",
                spinners.len() - pinned,
                spinners.len()
            );
        }
        if pinned == 0 {
            return None;
        }
        let _ = warm.spinners.set(spinners);
        Some(warm)
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Called whenever a worker wakes: a clock read and a store, so the
    /// request that woke it is not kept waiting.
    pub fn woke(&self) {
        self.until.store(self.now() + self.window, SeqCst);
    }

    /// Called whenever a worker is about to park, which is when the CPUs
    /// start to fall idle: wakes the spinners if they have gone to sleep,
    /// at a moment when the worker has nothing else to do.
    pub fn parking(&self) {
        self.woke();
        if self.asleep.load(SeqCst) && self.asleep.swap(false, SeqCst) {
            for t in self.spinners.get().into_iter().flatten() {
                t.unpark();
            }
        }
    }

    fn spin(&self) {
        loop {
            while self.now() < self.until.load(SeqCst) {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
            // A `parking` either sees `asleep` and unparks this thread (an
            // unpark before the park makes the park return at once), or came
            // before the store and its new deadline shows here. A `woke`
            // alone does not wake a sleeping spinner: the worker's next
            // `parking` does, when the CPUs actually fall idle.
            self.asleep.store(true, SeqCst);
            if self.now() >= self.until.load(SeqCst) {
                std::thread::park();
            }
        }
    }
}

/// The CPUs in this process's affinity mask.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it in.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpu` under SCHED_IDLE. Without both, a
/// spinner could take CPU time from real work or leave its CPU to halt, so
/// a thread that gets neither does not spin.
fn pin_idle(cpu: usize) -> bool {
    // SAFETY: plain syscalls on the calling thread with initialised arguments.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
            && libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0
    }
}
