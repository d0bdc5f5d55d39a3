//! Joins the three kernel views of one exec into a single record: the argv at syscall entry, the
//! syscall's result, and (on success) `sched_process_exec`. A failed exec is reported as failed,
//! never as run.

use std::collections::HashMap;

use serde::Serialize;

use super::{Event, Exec, ExecArgv, ExecResult};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ExecOutcome {
    /// The new program is running.
    Ran,
    /// The exec failed with this errno; the old program kept running.
    Failed { errno: i32 },
}

/// One exec attempt, as the process table and the rules see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExecRecord {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: Option<u32>,
    pub uid: Option<u32>,
    pub start_time_ns: Option<u64>,
    /// The path the caller passed to exec.
    pub filename: String,
    /// The path the kernel ran (from `sched_process_exec`), when it ran.
    pub exe: Option<String>,
    pub argv: Vec<String>,
    pub argv_truncated: bool,
    /// The exec gate held it and owns its verdict (the kernel's `ARGV_GATED`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gated: bool,
    #[serde(flatten)]
    pub outcome: ExecOutcome,
}

/// Pending attempts are kept per tid, bounded; the oldest is dropped past the bound.
pub struct ExecJoin {
    pending: HashMap<u32, (ExecArgv, Option<Exec>)>,
    max_pending: usize,
    /// Attempts dropped because the table was full, or superseded before their result arrived.
    pub dropped: u64,
}

impl ExecJoin {
    pub fn new(max_pending: usize) -> Self {
        Self { pending: HashMap::new(), max_pending: max_pending.max(1), dropped: 0 }
    }

    /// Feeds one event; returns a finished record when this event completes an exec.
    pub fn push(&mut self, ev: &Event) -> Option<ExecRecord> {
        match ev {
            Event::ExecArgv(a) => {
                if self.pending.len() >= self.max_pending && !self.pending.contains_key(&a.tid) {
                    self.evict_oldest();
                }
                if self.pending.insert(a.tid, (a.clone(), None)).is_some() {
                    self.dropped += 1;
                }
                None
            }
            // After a successful exec from a non-leader thread the caller's tid becomes the
            // leader's, so the attempt is found under `old_tid`.
            Event::Exec(e) => {
                let (argv, _) = self.pending.remove(&e.old_tid)?;
                self.pending.insert(e.tid, (argv, Some(e.clone())));
                None
            }
            Event::ExecResult(r) => self.finish(r),
            _ => None,
        }
    }

    fn finish(&mut self, r: &ExecResult) -> Option<ExecRecord> {
        let (argv, exec) = self.pending.remove(&r.tid)?;
        let outcome = if r.ret < 0 {
            ExecOutcome::Failed { errno: i32::try_from(-r.ret).unwrap_or(i32::MAX) }
        } else {
            ExecOutcome::Ran
        };
        Some(ExecRecord {
            ts_ns: argv.ts_ns,
            pid: r.pid,
            tid: r.tid,
            ppid: exec.as_ref().map(|e| e.ppid),
            uid: exec.as_ref().map(|e| e.uid),
            start_time_ns: exec.as_ref().map(|e| e.start_time_ns),
            filename: argv.filename,
            exe: exec.map(|e| e.filename),
            argv: argv.argv,
            argv_truncated: argv.truncated,
            gated: argv.gated,
            outcome,
        })
    }

    fn evict_oldest(&mut self) {
        if let Some(tid) = self.pending.iter().min_by_key(|(t, (a, _))| (a.ts_ns, **t)).map(|(t, _)| *t) {
            self.pending.remove(&tid);
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ExecSyscall;

    fn argv(tid: u32, args: &[&str]) -> Event {
        Event::ExecArgv(ExecArgv {
            ts_ns: 1,
            pid: tid,
            tid,
            syscall: ExecSyscall::Execve,
            filename: format!("/bin/{}", args[0]),
            argv: args.iter().map(|s| s.to_string()).collect(),
            truncated: false,
            gated: false,
        })
    }

    fn exec(tid: u32, old_tid: u32) -> Event {
        Event::Exec(Exec {
            ts_ns: 2,
            pid: tid,
            tid,
            old_tid,
            ppid: 1,
            uid: 0,
            start_time_ns: 99,
            comm: "rm".into(),
            filename: "/usr/bin/rm".into(),
        })
    }

    fn result(tid: u32, ret: i64) -> Event {
        Event::ExecResult(ExecResult { ts_ns: 3, pid: tid, tid, ret })
    }

    #[test]
    fn a_successful_exec_joins_argv_exec_and_result() {
        let mut j = ExecJoin::new(8);
        assert_eq!(j.push(&argv(5, &["rm", "-rf", "x"])), None);
        assert_eq!(j.push(&exec(5, 5)), None);
        let r = j.push(&result(5, 0)).expect("record");
        assert_eq!(r.outcome, ExecOutcome::Ran);
        assert_eq!(r.argv, ["rm", "-rf", "x"]);
        assert_eq!(r.exe.as_deref(), Some("/usr/bin/rm"));
        assert_eq!(r.ppid, Some(1));
    }

    #[test]
    fn a_failed_exec_is_reported_failed_with_errno() {
        let mut j = ExecJoin::new(8);
        j.push(&argv(5, &["nope"]));
        let r = j.push(&result(5, -2)).expect("record");
        assert_eq!(r.outcome, ExecOutcome::Failed { errno: 2 });
        assert_eq!(r.exe, None);
    }

    #[test]
    fn exec_from_a_non_leader_thread_is_found_by_old_tid() {
        let mut j = ExecJoin::new(8);
        j.push(&argv(11, &["ls"]));
        j.push(&exec(10, 11));
        assert_eq!(j.push(&result(10, 0)).map(|r| r.outcome), Some(ExecOutcome::Ran));
    }

    #[test]
    fn pending_attempts_are_bounded() {
        let mut j = ExecJoin::new(2);
        for t in 1..=5 {
            j.push(&argv(t, &["x"]));
        }
        assert_eq!(j.pending.len(), 2);
        assert_eq!(j.dropped, 3);
    }
}
