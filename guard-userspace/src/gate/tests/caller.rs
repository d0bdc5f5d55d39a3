use std::{
    os::{fd::AsFd as _, unix::process::CommandExt as _},
    path::Path,
    process::Command,
    time::Duration,
};

use super::*;
use crate::gate::caller::{Caller, ExecSyscall, ReadCaps, ReadError, read_caller};

const WAIT: Duration = Duration::from_secs(10);

/// Runs `cmd` (an exec on the marked tmpfs), calls `with` on the pending event's tid before
/// allowing it, and returns what `with` returned.
fn while_pending<T>(fan: &Fanotify, cmd: Command, with: impl FnOnce(u32) -> T) -> T {
    let h = spawn(cmd);
    let evs = next_events(fan, WAIT);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let got = with(evs[0].tid);
    fan.respond(evs[0].fd.as_fd(), true).expect("respond");
    let (_, status) = join(h).expect("exec");
    assert_eq!(status.code(), Some(0));
    got
}

fn setup(test: &str) -> Option<(Tmpfs, Fanotify, PathBuf)> {
    let tmpfs = Tmpfs::mount(test)?;
    let bin = tmpfs.path().join("true");
    copy_exe(Path::new("/bin/true"), &bin);
    let fan = Fanotify::init().expect("fanotify_init");
    fan.mark_fs(tmpfs.path()).expect("mark the test tmpfs");
    Some((tmpfs, fan, bin))
}

#[test]
fn reads_the_exact_argv_and_cwd_of_a_pending_exec() {
    let Some((tmpfs, fan, bin)) = setup("reads_the_exact_argv_and_cwd_of_a_pending_exec") else { return };
    let long = "x".repeat(5000);
    let mut cmd = Command::new(&bin);
    cmd.arg0("true").args(["a b", "", &long, "é"]).current_dir(tmpfs.path());
    let got = while_pending(&fan, cmd, |tid| read_caller(Path::new("/proc"), tid, &ReadCaps::default()).expect("read_caller"));
    assert_eq!(got, Caller {
        syscall: ExecSyscall::Execve,
        filename: bin.to_str().expect("utf8").to_owned(),
        argv: ["true", "a b", "", &long, "é"].map(String::from).to_vec(),
        argv_complete: true,
        cwd: Some(tmpfs.path().to_owned()),
    });
    // Not blocked in exec (this thread is running, reading its own syscall file).
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() } as u32;
    assert!(matches!(read_caller(Path::new("/proc"), me, &ReadCaps::default()), Err(ReadError::NotExec)));
    assert!(matches!(read_caller(Path::new("/proc"), u32::MAX - 1, &ReadCaps::default()), Err(ReadError::Gone)));
}

#[test]
fn many_arguments_and_the_caps() {
    let Some((_tmpfs, fan, bin)) = setup("many_arguments_and_the_caps") else { return };
    let argv: Vec<String> = std::iter::once("true".to_owned()).chain((1..5000).map(|i| format!("arg-{i}"))).collect();
    let mut cmd = Command::new(&bin);
    cmd.arg0(&argv[0]).args(&argv[1..]);
    let read = |tid, max_args, max_bytes| read_caller(Path::new("/proc"), tid, &ReadCaps { max_args, max_bytes }).expect("read_caller");
    let [exact, default, one_short, bytes] = while_pending(&fan, cmd, |tid| {
        [read(tid, 5000, 256 << 10), read_caller(Path::new("/proc"), tid, &ReadCaps::default()).expect("read_caller"), read(tid, 4999, 256 << 10), read(tid, 5000, 1000)]
    });
    assert!(exact.argv_complete);
    assert_eq!(exact.argv, argv);
    assert!(!default.argv_complete);
    assert_eq!(default.argv, argv[..4096]);
    assert!(!one_short.argv_complete);
    assert_eq!(one_short.argv, argv[..4999]);
    // Whole strings within 1,000 bytes (each counts its NUL).
    let fit = argv.iter().scan(0, |sum, a| {
        *sum += a.len() + 1;
        (*sum <= 1000).then_some(())
    });
    assert!(!bytes.argv_complete);
    assert_eq!(bytes.argv.len(), fit.count());
}

#[test]
fn read_caller_cost() {
    let Some((_tmpfs, fan, bin)) = setup("read_caller_cost") else { return };
    let mut cmd = Command::new(&bin);
    cmd.arg0("true").args(["-rf", "build/"]);
    let (per, got) = while_pending(&fan, cmd, |tid| {
        let caps = ReadCaps::default();
        let n = 2000u32;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(read_caller(Path::new("/proc"), tid, &caps).expect("read_caller"));
        }
        (t.elapsed() / n, read_caller(Path::new("/proc"), tid, &caps).expect("read_caller"))
    });
    assert_eq!(got.argv, ["true", "-rf", "build/"]);
    eprintln!("read_caller, 3 arguments: {:.1} µs per call", per.as_secs_f64() * 1e6);
}
