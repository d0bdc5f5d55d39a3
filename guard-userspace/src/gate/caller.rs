//! The exact argv and cwd of a thread blocked in execve, read while its old memory is intact.
//!
//! While an exec permission event is pending, the caller sleeps inside execve before
//! `exec_update_lock`, so `/proc/TID/syscall` names the call and its arguments, and
//! `process_vm_readv` reads the argv the caller passed (FACTS; needs CAP_SYS_PTRACE).
//! `/proc/PID/cmdline` would still show the old program. 64-bit callers only: a compat (32-bit)
//! caller reports other syscall numbers and is `NotExec`.

use std::{
    fs, io,
    io::Read as _,
    path::{Path, PathBuf},
};

/// Which exec call the thread is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExecSyscall {
    Execve,
    Execveat,
}

/// What the caller asked to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) syscall: ExecSyscall,
    /// The path argument as passed (relative to cwd or to execveat's dirfd); "" when unreadable.
    pub(crate) filename: String,
    /// Whole strings only, in order: a prefix of the real argv when `argv_complete` is false.
    pub(crate) argv: Vec<String>,
    /// False when a cap was hit or a pointer or string could not be read.
    pub(crate) argv_complete: bool,
    pub(crate) cwd: Option<PathBuf>,
}

/// Bounds on one read: a huge argv must not stall a judge.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadCaps {
    pub(crate) max_args: usize,
    /// Total argv bytes, each string's bytes plus its NUL.
    pub(crate) max_bytes: usize,
}

impl Default for ReadCaps {
    fn default() -> Self {
        Self { max_args: 4096, max_bytes: 256 << 10 }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("the thread is gone")]
    Gone,
    #[error("not permitted to read the thread (needs CAP_SYS_PTRACE)")]
    Denied,
    #[error("the thread is not in execve or execveat")]
    NotExec,
    #[error("malformed /proc/TID/syscall: {0}")]
    Malformed(String),
    #[error("reading the caller: {0}")]
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ESRCH) => ReadError::Gone,
            Some(libc::EPERM | libc::EACCES) => ReadError::Denied,
            _ => ReadError::Io(e),
        }
    }
}

/// A line of `/proc/TID/syscall`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SyscallLine {
    /// "running", or a negative number: not blocked in a syscall.
    NotInSyscall,
    InSyscall { nr: u64, args: [u64; 6] },
}

fn hex(field: &str) -> Result<u64, String> {
    let digits = field.strip_prefix("0x").unwrap_or(field);
    u64::from_str_radix(digits, 16).map_err(|_| format!("not a hex number: {field:?}"))
}

/// Parses "nr arg0 … arg5 sp pc" (hex arguments), "-1 sp pc" or "running".
pub(crate) fn parse_syscall(text: &str) -> Result<SyscallLine, String> {
    let mut fields = text.split_ascii_whitespace();
    let first = fields.next().ok_or("empty")?;
    if first == "running" {
        return Ok(SyscallLine::NotInSyscall);
    }
    let nr: i64 = first.parse().map_err(|_| format!("bad syscall number {first:?}"))?;
    if nr < 0 {
        return Ok(SyscallLine::NotInSyscall);
    }
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        *a = hex(fields.next().ok_or_else(|| format!("{} fields, expected 9", i + 1))?)?;
    }
    // sp and pc: unused, but their absence means the line is not what we think it is.
    for i in 7..9 {
        hex(fields.next().ok_or_else(|| format!("{i} fields, expected 9"))?)?;
    }
    Ok(SyscallLine::InSyscall { nr: nr as u64, args })
}

/// (which call, filename pointer, argv pointer) for an exec call, else `NotExec`.
fn exec_args(line: &SyscallLine) -> Result<(ExecSyscall, u64, u64), ReadError> {
    match *line {
        SyscallLine::InSyscall { nr, args } if nr == libc::SYS_execve as u64 => Ok((ExecSyscall::Execve, args[0], args[1])),
        SyscallLine::InSyscall { nr, args } if nr == libc::SYS_execveat as u64 => Ok((ExecSyscall::Execveat, args[1], args[2])),
        _ => Err(ReadError::NotExec),
    }
}

/// Reads the exec arguments of thread `tid`. `proc_root` is normally `/proc` (the tid must be in
/// our pid namespace either way, for `process_vm_readv`).
pub(crate) fn read_caller(proc_root: &Path, tid: u32, caps: &ReadCaps) -> Result<Caller, ReadError> {
    let dir = proc_root.join(tid.to_string());
    // A stack buffer: the line is at most ~180 bytes, and this runs once per judged exec.
    let mut buf = [0u8; 256];
    let mut f = fs::File::open(dir.join("syscall"))?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let text = std::str::from_utf8(&buf[..n]).map_err(|_| ReadError::Malformed("not UTF-8".into()))?;
    let line = parse_syscall(text).map_err(ReadError::Malformed)?;
    let (syscall, filename_ptr, argv_ptr) = exec_args(&line)?;
    let pid = libc::pid_t::try_from(tid).map_err(|_| ReadError::Malformed(format!("tid {tid} out of range")))?;
    let mem = Remote { pid };
    let (argv, argv_complete) = mem.read_argv(argv_ptr as usize, caps)?;
    // The filename is bounded by PATH_MAX; an unreadable one leaves "" (argv is what is judged).
    let filename = match mem.read_strings(&[filename_ptr as usize], libc::PATH_MAX as usize)? {
        (mut v, _) if !v.is_empty() => v.swap_remove(0),
        _ => String::new(),
    };
    let cwd = match fs::read_link(dir.join("cwd")) {
        Ok(p) => Some(p),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => return Err(ReadError::Gone),
        Err(_) => None,
    };
    Ok(Caller { syscall, filename, argv, argv_complete, cwd })
}

const WORD: usize = std::mem::size_of::<usize>();
/// Pointers per `process_vm_readv` of the argv array (4 KiB).
const PTR_CHUNK: usize = 512;
/// First read per string: most arguments are shorter.
const FIRST_READ: usize = 256;
/// Later reads of a long string.
const STEP: usize = 4096;
/// The kernel's IOV_MAX: iovecs per call.
const MAX_IOV: usize = 1024;

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|p| p.is_power_of_two()).unwrap_or(4096)
}

/// Bytes from `addr` to the end of its page.
fn to_page_end(addr: usize, page: usize) -> usize {
    page - (addr & (page - 1))
}

/// Another process's memory.
pub(super) struct Remote {
    pub(super) pid: libc::pid_t,
}

impl Remote {
    /// One little-endian u64 at `addr` (a field of a struct the caller passed), if readable.
    pub(super) fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        let n = self.readv(&mut b, &[(usize::try_from(addr).ok()?, 8)]).ok()?;
        (n == 8).then(|| u64::from_le_bytes(b))
    }

    /// Up to `len` bytes at `addr`: what is readable of them, from the start.
    pub(super) fn read_bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        let n = usize::try_from(addr).ok().and_then(|a| self.readv(&mut b, &[(a, len)]).ok()).unwrap_or(0);
        b.truncate(n);
        b
    }

    /// One `process_vm_readv` into `local` from the `(addr, len)` ranges, whose lengths sum to at
    /// most `local.len()`. Returns the bytes read: the transfer stops at the first range that
    /// faults, so a partial count means the range holding byte `n` was unreadable. EFAULT with
    /// nothing read is `Ok(0)`.
    fn readv(&self, local: &mut [u8], remote: &[(usize, usize)]) -> io::Result<usize> {
        let riov: Vec<libc::iovec> = remote.iter().map(|&(a, l)| libc::iovec { iov_base: a as *mut libc::c_void, iov_len: l }).collect();
        let total: usize = remote.iter().map(|r| r.1).sum();
        let liov = libc::iovec { iov_base: local.as_mut_ptr().cast(), iov_len: total.min(local.len()) };
        // SAFETY: the local iovec covers a writable buffer we own for the call; the remote ones
        // are only addresses in the other process, checked by the kernel.
        let n = unsafe { libc::process_vm_readv(self.pid, &raw const liov, 1, riov.as_ptr(), riov.len() as libc::c_ulong, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EFAULT) { Ok(0) } else { Err(e) };
        }
        Ok(n as usize)
    }

    /// The argv pointer array then its strings. `(strings, complete)`.
    fn read_argv(&self, argv_ptr: usize, caps: &ReadCaps) -> io::Result<(Vec<String>, bool)> {
        if argv_ptr == 0 {
            return Ok((Vec::new(), true)); // execve(path, NULL, envp): an empty argv
        }
        let mut ptrs = Vec::new();
        let mut complete = false;
        let mut buf = vec![0u8; PTR_CHUNK * WORD];
        // One more than the cap, so that an argv of exactly max_args is seen to end.
        'array: while ptrs.len() <= caps.max_args {
            let want = (caps.max_args + 1 - ptrs.len()).min(PTR_CHUNK);
            let addr = argv_ptr.wrapping_add(ptrs.len() * WORD);
            let n = self.readv(&mut buf[..want * WORD], &[(addr, want * WORD)])?;
            for w in buf[..n - n % WORD].chunks_exact(WORD) {
                let mut b = [0u8; WORD];
                b.copy_from_slice(w);
                let p = usize::from_ne_bytes(b);
                if p == 0 {
                    complete = true;
                    break 'array;
                }
                if ptrs.len() == caps.max_args {
                    break 'array; // a pointer past the cap: incomplete
                }
                ptrs.push(p);
            }
            if n < want * WORD {
                break; // the array runs into unreadable memory
            }
        }
        let (strings, all) = self.read_strings(&ptrs, caps.max_bytes)?;
        Ok((strings, complete && all))
    }

    /// NUL-terminated strings at `ptrs`, in order, within `max_bytes` (bytes plus NULs).
    /// Stops at the first string that is unreadable or over the budget: `(prefix, false)`.
    fn read_strings(&self, ptrs: &[usize], max_bytes: usize) -> io::Result<(Vec<String>, bool)> {
        let page = page_size();
        let mut out = Vec::with_capacity(ptrs.len());
        let mut left = max_bytes;
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < ptrs.len() {
            // One batch: a first read of each string, clipped at its page end (a range that
            // crosses into an unmapped page would end the whole transfer), up to the budget.
            ranges.clear();
            let mut asked = 0;
            for &p in &ptrs[i..] {
                if ranges.len() == MAX_IOV || asked > left {
                    break;
                }
                let len = FIRST_READ.min(to_page_end(p, page));
                ranges.push((p, len));
                asked += len;
            }
            buf.resize(asked, 0);
            let n = self.readv(&mut buf, &ranges)?;
            let mut off = 0;
            for &(p, len) in &ranges {
                if off + len > n {
                    return Ok((out, false)); // this string's first page is unreadable
                }
                let chunk = &buf[off..off + len];
                off += len;
                let bytes = match chunk.iter().position(|&b| b == 0) {
                    Some(nul) => chunk[..nul].to_vec(),
                    None => match self.read_long(p, chunk, left, page)? {
                        Some(b) => b,
                        None => return Ok((out, false)),
                    },
                };
                if bytes.len() + 1 > left {
                    // A partial argument could match a rule the whole one does not: drop it.
                    return Ok((out, false));
                }
                left -= bytes.len() + 1;
                out.push(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()));
                i += 1;
            }
        }
        Ok((out, true))
    }

    /// Finishes a string whose first `head` bytes held no NUL, reading page-clipped steps of up to
    /// `STEP` bytes. None: unreadable, or longer than `left` (the budget) before its NUL.
    fn read_long(&self, p: usize, head: &[u8], left: usize, page: usize) -> io::Result<Option<Vec<u8>>> {
        let mut s = head.to_vec();
        let mut buf = vec![0u8; STEP];
        while s.len() < left {
            let start = p.wrapping_add(s.len());
            let want = STEP.min(left - s.len());
            // Split at page boundaries: the kernel copies whole ranges up to the first fault.
            let mut ranges = Vec::new();
            let (mut a, mut rest) = (start, want);
            while rest > 0 {
                let len = rest.min(to_page_end(a, page));
                ranges.push((a, len));
                a = a.wrapping_add(len);
                rest -= len;
            }
            let n = self.readv(&mut buf[..want], &ranges)?;
            if let Some(nul) = buf[..n].iter().position(|&b| b == 0) {
                s.extend_from_slice(&buf[..nul]);
                return Ok(Some(s));
            }
            s.extend_from_slice(&buf[..n]);
            if n < want {
                return Ok(None); // ran into unreadable memory before the NUL
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod unit {
    use std::ffi::CString;

    use super::*;

    fn line(nr: i64, argv: u64) -> String {
        format!("{nr} 0x5 0x{argv:x} 0x7ffd1000 0x0 0x0 0x0 0x7ffd0ff8 0x7f00deadbeef\n")
    }

    #[test]
    fn parses_syscall_lines() {
        assert_eq!(parse_syscall(&line(59, 0x1234)), Ok(SyscallLine::InSyscall { nr: 59, args: [5, 0x1234, 0x7ffd1000, 0, 0, 0] }));
        assert_eq!(parse_syscall("running\n"), Ok(SyscallLine::NotInSyscall));
        assert_eq!(parse_syscall("-1 0x7ffd0ff8 0x7f00deadbeef\n"), Ok(SyscallLine::NotInSyscall));
        assert_eq!(parse_syscall("-1\n"), Ok(SyscallLine::NotInSyscall));
        for bad in ["", "\n", "   ", "garbage", "59", "59 0x1 0x2 0x3", "59 0x1 0x2 0x3 0x4 0x5 0x6 0x7", "59 0x1 0x2 zz 0x4 0x5 0x6 0x7 0x8", "0x3b 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8", "59 0x 0x2 0x3 0x4 0x5 0x6 0x7 0x8"] {
            assert!(parse_syscall(bad).is_err(), "{bad:?}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn picks_the_exec_arguments() {
        let get = |s: &str| exec_args(&parse_syscall(s).expect("parse"));
        assert!(matches!(get(&line(59, 0x10)), Ok((ExecSyscall::Execve, 5, 0x10))));
        assert!(matches!(get("322 0xffffff9c 0x20 0x30 0x0 0x0 0x0 0x1 0x2"), Ok((ExecSyscall::Execveat, 0x20, 0x30))));
        assert!(matches!(get(&line(0, 0x10)), Err(ReadError::NotExec)));
        assert!(matches!(get("running"), Err(ReadError::NotExec)));
    }

    #[test]
    fn errors_map_from_errno() {
        for (errno, want) in [(libc::ENOENT, "gone"), (libc::ESRCH, "gone"), (libc::EPERM, "denied"), (libc::EACCES, "denied"), (libc::EIO, "io")] {
            let got = match ReadError::from(io::Error::from_raw_os_error(errno)) {
                ReadError::Gone => "gone",
                ReadError::Denied => "denied",
                ReadError::Io(_) => "io",
                _ => "other",
            };
            assert_eq!(got, want, "errno {errno}");
        }
    }

    fn me() -> Remote {
        // SAFETY: getpid has no preconditions.
        Remote { pid: unsafe { libc::getpid() } }
    }

    /// Our own memory read through process_vm_readv: the same paths as another process's.
    fn argv_of(strings: &[&[u8]]) -> (Vec<CString>, Vec<usize>) {
        let owned: Vec<CString> = strings.iter().map(|s| CString::new(*s).expect("no NUL")).collect();
        let mut ptrs: Vec<usize> = owned.iter().map(|c| c.as_ptr() as usize).collect();
        ptrs.push(0);
        (owned, ptrs)
    }

    #[test]
    fn reads_one_u64_or_nothing_from_an_unmapped_address() {
        let v: u64 = 0x0123_4567_89ab_cdef;
        assert_eq!(me().read_u64(&raw const v as u64), Some(v));
        assert_eq!(me().read_u64(0), None);
    }

    #[test]
    fn reads_own_argv_with_long_and_odd_strings() {
        let long = vec![b'x'; 70_000];
        let (_keep, ptrs) = argv_of(&[b"rm", b"a b", b"", &long, "é".as_bytes(), b"\xff\xfeok"]);
        let (argv, complete) = me().read_argv(ptrs.as_ptr() as usize, &ReadCaps::default()).expect("read");
        assert!(complete);
        assert_eq!(argv.len(), 6);
        assert_eq!(&argv[..3], ["rm", "a b", ""]);
        assert_eq!(argv[3].len(), 70_000);
        assert_eq!(argv[4], "é");
        assert_eq!(argv[5], "\u{fffd}\u{fffd}ok");
        assert_eq!(me().read_argv(0, &ReadCaps::default()).expect("null argv"), (vec![], true));
    }

    #[test]
    fn caps_make_argv_incomplete() {
        let many: Vec<String> = (0..3000).map(|i| format!("arg{i}")).collect();
        let refs: Vec<&[u8]> = many.iter().map(|s| s.as_bytes()).collect();
        let (_keep, ptrs) = argv_of(&refs);
        let at = ptrs.as_ptr() as usize;
        let read = |max_args, max_bytes| me().read_argv(at, &ReadCaps { max_args, max_bytes }).expect("read");
        let (argv, complete) = read(3000, 1 << 20);
        assert!(complete);
        assert_eq!(argv, many);
        let (argv, complete) = read(2999, 1 << 20);
        assert!(!complete);
        assert_eq!(argv.len(), 2999);
        // "arg0".."arg9" are 5 bytes with their NUL: a 23-byte budget holds 4 whole strings.
        let (argv, complete) = read(3000, 23);
        assert!(!complete);
        assert_eq!(argv, many[..4]);
        let (argv, complete) = read(3000, 25);
        assert!(!complete && argv.len() == 5);
    }

    /// Two pages, the second inaccessible: strings and arrays that run into it.
    #[test]
    fn unreadable_memory_truncates() {
        let page = page_size();
        // SAFETY: a fresh anonymous private mapping; no existing memory is touched.
        let map = unsafe { libc::mmap(std::ptr::null_mut(), 2 * page, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        assert_ne!(map, libc::MAP_FAILED);
        let base = map as usize;
        // SAFETY: the second page belongs to the mapping made above.
        assert_eq!(unsafe { libc::mprotect((base + page) as *mut libc::c_void, page, libc::PROT_NONE) }, 0);
        // SAFETY: the first page is mapped read-write and nothing else refers to it.
        let first = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, page) };
        first.fill(b'y'); // no NUL before the inaccessible page
        let ok = CString::new("ok").expect("cstr");
        let (strings, complete) = me().read_strings(&[ok.as_ptr() as usize, base + page - 10, ok.as_ptr() as usize], 1 << 20).expect("read");
        assert_eq!((strings, complete), (vec!["ok".to_string()], false));
        let (strings, complete) = me().read_strings(&[base + page, ok.as_ptr() as usize], 1 << 20).expect("read");
        assert_eq!((strings, complete), (vec![], false));
        // A pointer array that ends at the inaccessible page without a NULL.
        let at = base + page - 2 * WORD;
        first[page - 2 * WORD..page - WORD].copy_from_slice(&(ok.as_ptr() as usize).to_ne_bytes());
        first[page - WORD..].copy_from_slice(&(ok.as_ptr() as usize).to_ne_bytes());
        let (argv, complete) = me().read_argv(at, &ReadCaps::default()).expect("read");
        assert_eq!((argv, complete), (vec!["ok".to_string(), "ok".to_string()], false));
        // SAFETY: unmapping the mapping made above; `first` is not used after this.
        assert_eq!(unsafe { libc::munmap(map, 2 * page) }, 0);
    }
}
