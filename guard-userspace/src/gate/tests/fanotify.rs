use std::{os::fd::AsFd as _, path::Path, process::Command, time::Duration};

use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// Answers every event until the spawner finishes; `(tid, file)` of each event, in order.
fn answer_until_done(fan: &Fanotify, h: &JoinHandle<io::Result<(u32, ExitStatus)>>, allow: bool) -> Vec<(u32, PathBuf)> {
    let until = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut evs = Vec::new();
    while !h.is_finished() || fan.has_queued() {
        assert!(Instant::now() < until, "the exec did not finish");
        if !fan.wait(Duration::from_millis(20)).expect("poll") {
            continue;
        }
        fan.read(&mut buf, &mut evs).expect("read");
        for ev in evs.drain(..) {
            assert_eq!(ev.mask & libc::FAN_OPEN_EXEC_PERM, libc::FAN_OPEN_EXEC_PERM, "{ev:?}");
            seen.push((ev.tid, fd_path(&ev)));
            fan.respond(ev.fd.as_fd(), allow).expect("respond");
        }
    }
    seen
}

fn marked(tmpfs: &Tmpfs) -> Fanotify {
    let fan = Fanotify::init().expect("fanotify_init");
    fan.mark_fs(tmpfs.path()).expect("mark the test tmpfs");
    fan
}

#[test]
fn deny_fails_the_exec_with_eperm_and_allow_runs_it() {
    let Some(tmpfs) = Tmpfs::mount("deny_fails_the_exec_with_eperm_and_allow_runs_it") else { return };
    let bin = tmpfs.path().join("true");
    copy_exe(Path::new("/bin/true"), &bin);
    let fan = marked(&tmpfs);

    let h = spawn(Command::new(&bin));
    let seen = answer_until_done(&fan, &h, false);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let err = join(h).expect_err("a denied exec fails");
    assert_eq!((err.kind(), err.raw_os_error()), (io::ErrorKind::PermissionDenied, Some(libc::EPERM)));

    let h = spawn(Command::new(&bin));
    answer_until_done(&fan, &h, true);
    let (_, status) = join(h).expect("allowed exec");
    assert_eq!(status.code(), Some(0));
    assert_eq!(fan.overflows(), 0);

    // After a flush nothing is asked, and a path with a NUL is refused before the kernel.
    fan.flush().expect("flush");
    let (_, status) = join(spawn(Command::new(&bin))).expect("exec after flush");
    assert_eq!(status.code(), Some(0));
    assert!(!fan.has_queued());
    assert_eq!(fan.mark_fs(Path::new("/tmp/a\0b")).map_err(|e| e.kind()), Err(io::ErrorKind::InvalidInput));
}

/// What the kernel reports per exec. Only the test tmpfs is marked, so a plain copy of a dynamic
/// /bin/true raises ONE event: its loader (/lib64/ld-linux-x86-64.so.2) lives on the root fs,
/// which is not marked. With the copy's PT_INTERP pointed at a loader copy on the tmpfs, the same
/// exec raises the two events FACTS counts on `/` (binary, then loader), and a script whose
/// interpreter is that binary raises three (script, interpreter, loader). A static binary raises
/// one. All events of one exec carry the caller's TID, which is the new child's pid here.
#[test]
fn events_per_exec_share_the_tid() {
    let Some(tmpfs) = Tmpfs::mount("events_per_exec_share_the_tid") else { return };
    let dir = tmpfs.path();
    let plain = dir.join("true");
    copy_exe(Path::new("/bin/true"), &plain);
    let fan = marked(&tmpfs);

    let run = |cmd: Command| {
        let h = spawn(cmd);
        let seen = answer_until_done(&fan, &h, true);
        let (pid, status) = join(h).expect("exec");
        assert!(status.success(), "{status:?}");
        assert!(seen.iter().all(|(tid, _)| *tid == pid), "tids {seen:?}, child {pid}");
        seen.into_iter().map(|(_, p)| p).collect::<Vec<_>>()
    };

    assert_eq!(run(Command::new(&plain)), [plain], "dynamic ELF, loader unmarked");

    match patch_interp(dir) {
        Some((bin, ld)) => {
            assert_eq!(run(Command::new(&bin)), [bin.clone(), ld.clone()], "dynamic ELF, loader on the tmpfs");
            let script = dir.join("script");
            fs::write(&script, format!("#!{}\n", bin.display())).expect("script");
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
            assert_eq!(run(Command::new(&script)), [script.clone(), bin, ld], "script");
        }
        None => eprintln!("events_per_exec_share_the_tid: /bin/true's loader path cannot be rewritten; two-event case skipped"),
    }

    match static_binary() {
        Some(src) => {
            let bin = dir.join("static");
            copy_exe(&src, &bin);
            let mut cmd = Command::new(&bin);
            cmd.arg("--version");
            assert_eq!(run(cmd), [bin], "static ELF");
        }
        None => eprintln!("events_per_exec_share_the_tid: no small static binary here; static case skipped"),
    }
}

/// Closing the group with an event queued (unread) or read but unanswered: the kernel allows it.
/// The exec'ing process is forked BEFORE the group exists: a process forked while the group fd is
/// open holds a copy of it (CLOEXEC closes it only past exec's permission checks), so our close is
/// then not the last one (see `a_child_forked_while_armed_holds_the_group`).
#[test]
fn closing_the_group_allows_pending_execs() {
    use std::io::Write as _;
    let Some(tmpfs) = Tmpfs::mount("closing_the_group_allows_pending_execs") else { return };
    let bin = tmpfs.path().join("true");
    copy_exe(Path::new("/bin/true"), &bin);
    for read_first in [false, true] {
        let mut child = Command::new("/bin/sh")
            .args(["-c", r#"read -r _; exec "$0""#])
            .arg(&bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let fan = marked(&tmpfs);
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("write");
        drop(stdin);
        let until = Instant::now() + WAIT;
        while !fan.has_queued() {
            assert!(Instant::now() < until, "no event");
            fan.wait(Duration::from_millis(50)).expect("poll");
        }
        let held = if read_first { next_events(&fan, WAIT) } else { Vec::new() };
        assert_eq!(held.iter().map(|e| e.tid).collect::<Vec<_>>(), if read_first { vec![child.id()] } else { vec![] });
        let h = std::thread::spawn(move || child.wait());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!h.is_finished(), "the exec waits for an answer");
        drop(fan);
        let until = Instant::now() + WAIT;
        while !h.is_finished() {
            assert!(Instant::now() < until, "the exec was not allowed at close (read_first={read_first})");
            std::thread::sleep(Duration::from_millis(5));
        }
        let status = h.join().expect("waiter").expect("wait");
        assert_eq!(status.code(), Some(0), "read_first={read_first}");
        drop(held);
    }
}

/// The hazard the gate must avoid (never fork while armed): a child forked while the group fd is
/// open keeps a copy of it until its exec passes the permission checks. If that exec waits on this
/// group, closing our fd is not the last close, nothing allows it, and the child hangs in
/// `fanotify_handle_event` until SIGKILL (measured here: state D, reparented to init).
#[test]
fn a_child_forked_while_armed_holds_the_group() {
    let Some(tmpfs) = Tmpfs::mount("a_child_forked_while_armed_holds_the_group") else { return };
    let bin = tmpfs.path().join("true");
    copy_exe(Path::new("/bin/true"), &bin);
    let fan = marked(&tmpfs);
    let h = spawn(Command::new(&bin));
    let evs = next_events(&fan, WAIT);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let tid = evs[0].tid;
    drop(fan);
    std::thread::sleep(Duration::from_millis(300));
    let stuck = !h.is_finished();
    // Free the child before asserting, so a failure leaves nothing behind.
    if stuck {
        // SAFETY: kill has no memory arguments; `tid` is our own child, blocked in its exec.
        unsafe { libc::kill(tid as libc::pid_t, libc::SIGKILL) };
    }
    let _ = join(h);
    drop(evs);
    assert!(stuck, "the kernel allowed the exec although the child held the group fd");
}
