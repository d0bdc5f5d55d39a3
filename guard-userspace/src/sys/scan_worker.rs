//! Runs the [`Scanner`] on low-priority threads, so analysing a new 100 MB binary never stalls
//! the event loop that drains the ring buffer. Two lanes: one serves processes that just exec'd,
//! the other the periodic pass over every process (and, at start, the ahead-of-time analysis of
//! what agents are likely to run, [`super::ahead`]). A pass that meets a large new file (a fresh
//! build on a developer's machine) takes seconds on it, and a program started meanwhile must not
//! wait behind it. The lanes share one [`Scanner`], so a file is analysed once whichever lane meets
//! it first. Requests are coalesced: a burst of execs costs one scan per distinct process.

use std::{
    collections::BTreeSet,
    sync::mpsc::{Receiver, Sender, channel},
    thread::JoinHandle,
};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{
    ahead::Ahead,
    targets::{ProcessTls, Scanner, TlsTarget},
};

/// What the worker learnt.
#[derive(Debug)]
pub(crate) enum Report {
    /// A new file to attach, found mapped by a running process: it may have run before its hooks.
    Target(TlsTarget),
    /// A new file to attach, found before any program of it ran (`ahead`).
    Ahead(TlsTarget),
    /// The TLS files a process maps (for the blind-spot gauge), at each scan of it.
    Process(u32, ProcessTls),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Request {
    /// The files one process maps.
    Pid(u32),
    /// Every running process.
    All,
}

pub(crate) struct ScanWorker {
    /// (exec lane, pass lane).
    tx: Option<(Sender<Request>, Sender<Request>)>,
    /// New targets, to attach on the event loop (the kernel handle is not shared), and changes
    /// of what each process carries.
    pub found: UnboundedReceiver<Report>,
    threads: Vec<JoinHandle<()>>,
}

/// Niceness of the scanning thread: analysis takes what CPU the machine does not need.
const NICE: i32 = 10;

impl ScanWorker {
    /// `ahead` runs first on the pass lane: the exec lane stays free for programs that start.
    pub(crate) fn spawn(scanner: Scanner, ahead: Option<Ahead>) -> std::io::Result<Self> {
        let (found_tx, found) = unbounded_channel();
        let lane = |name: &str, scanner: Scanner, found: UnboundedSender<Report>, ahead: Option<Ahead>| {
            let (tx, rx) = channel();
            let t = std::thread::Builder::new().name(name.into()).spawn(move || work(scanner, rx, found, ahead))?;
            Ok::<_, std::io::Error>((tx, t))
        };
        let (exec_tx, exec) = lane("guard-scan-exec", scanner.clone(), found_tx.clone(), None)?;
        let (pass_tx, pass) = lane("guard-scan-pass", scanner, found_tx, ahead)?;
        Ok(Self { tx: Some((exec_tx, pass_tx)), found, threads: vec![exec, pass] })
    }

    pub(crate) fn request(&self, r: Request) {
        if let Some((exec, pass)) = &self.tx {
            let _ = match r {
                Request::Pid(_) => exec.send(r),
                Request::All => pass.send(r),
            };
        }
    }
}

impl Drop for ScanWorker {
    fn drop(&mut self) {
        // Closing the channels ends each thread after the scan it is in.
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn work(scanner: Scanner, rx: Receiver<Request>, found: UnboundedSender<Report>, ahead: Option<Ahead>) {
    // SAFETY: setpriority on the calling thread (a Linux thread id is a PRIO_PROCESS who).
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, NICE) };
    if let Some(a) = ahead
        && !a.run(&scanner, |t| found.send(Report::Ahead(t)).is_ok())
    {
        return;
    }
    let mut pending: BTreeSet<Request> = BTreeSet::new();
    while let Ok(first) = rx.recv() {
        pending.insert(first);
        pending.extend(rx.try_iter());
        // Processes that just exec'd first: the periodic full pass can wait.
        let all = pending.remove(&Request::All);
        if !serve_pids(&scanner, &mut pending, &found) {
            return;
        }
        if all {
            for pid in Scanner::pids() {
                // A full pass can take long (new large files): serve fresh execs in between.
                pending.extend(rx.try_iter().filter(|r| *r != Request::All));
                if !serve_pids(&scanner, &mut pending, &found) || !scan(&scanner, pid, &found) {
                    return;
                }
            }
        }
    }
}

fn serve_pids(
    scanner: &Scanner,
    pending: &mut BTreeSet<Request>,
    found: &UnboundedSender<Report>,
) -> bool {
    let pids: Vec<u32> = pending
        .iter()
        .filter_map(|r| {
            if let Request::Pid(p) = r {
                Some(*p)
            } else {
                None
            }
        })
        .collect();
    pending.retain(|r| *r == Request::All);
    pids.into_iter().all(|pid| scan(scanner, pid, found))
}

/// Scans one process and sends what came of it; false once the daemon is gone.
fn scan(scanner: &Scanner, pid: u32, to: &UnboundedSender<Report>) -> bool {
    let Some((targets, tls)) = scanner.scan_process(pid) else { return true };
    targets.into_iter().map(Report::Target).chain([Report::Process(pid, tls)]).all(|r| to.send(r).is_ok())
}
