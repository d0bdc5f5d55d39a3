//! Runs the [`Scanner`] on its own low-priority thread, so analysing a new 100 MB binary never
//! stalls the event loop that drains the ring buffer. Requests are coalesced: a burst of execs
//! costs one pass per distinct process.

use std::{
    collections::BTreeSet,
    sync::mpsc::{Receiver, Sender, channel},
    thread::JoinHandle,
};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::targets::{ProcessTls, Scanner, TlsTarget};

/// What the worker learnt.
#[derive(Debug)]
pub enum Report {
    /// A new file to attach.
    Target(TlsTarget),
    /// The TLS files a process maps changed (for the blind-spot gauge).
    Process(u32, ProcessTls),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Request {
    /// The files one process maps.
    Pid(u32),
    /// Every running process.
    All,
}

pub struct ScanWorker {
    tx: Option<Sender<Request>>,
    /// New targets, to attach on the event loop (the kernel handle is not shared), and changes
    /// of what each process carries.
    pub found: UnboundedReceiver<Report>,
    thread: Option<JoinHandle<()>>,
}

/// Niceness of the scanning thread: analysis takes what CPU the machine does not need.
const NICE: i32 = 10;

impl ScanWorker {
    pub fn spawn(scanner: Scanner) -> std::io::Result<Self> {
        let (tx, rx) = channel();
        let (found_tx, found) = unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("guard-scan".into())
            .spawn(move || work(scanner, rx, found_tx))?;
        Ok(Self {
            tx: Some(tx),
            found,
            thread: Some(thread),
        })
    }

    pub fn request(&self, r: Request) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(r);
        }
    }
}

impl Drop for ScanWorker {
    fn drop(&mut self) {
        // Closing the channel ends the thread after the pass it is in.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn work(mut scanner: Scanner, rx: Receiver<Request>, found: UnboundedSender<Report>) {
    // SAFETY: setpriority on the calling thread (a Linux thread id is a PRIO_PROCESS who).
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, NICE) };
    let mut pending: BTreeSet<Request> = BTreeSet::new();
    while let Ok(first) = rx.recv() {
        pending.insert(first);
        pending.extend(rx.try_iter());
        // Processes that just exec'd first: the periodic full pass can wait.
        let all = pending.remove(&Request::All);
        if !serve_pids(&mut scanner, &mut pending, &found) {
            return;
        }
        if all {
            for pid in Scanner::pids() {
                // A full pass can take long (new large files): serve fresh execs in between.
                pending.extend(rx.try_iter().filter(|r| *r != Request::All));
                if !serve_pids(&mut scanner, &mut pending, &found) || !scan(&mut scanner, pid, &found) {
                    return;
                }
            }
        }
    }
}

fn serve_pids(
    scanner: &mut Scanner,
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
fn scan(scanner: &mut Scanner, pid: u32, to: &UnboundedSender<Report>) -> bool {
    let targets = scanner.scan_pid(pid).into_iter().map(Report::Target);
    let changes = scanner.take_changes().into_iter().map(|(pid, tls)| Report::Process(pid, tls));
    targets.chain(changes).all(|r| to.send(r).is_ok())
}
