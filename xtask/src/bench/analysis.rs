//! Analysis cost of a stripped binary: `guard hooks FILE` (the hook finder the daemon runs on
//! every new executable) on a Go binary, on Bun itself and on a ≈250 MB Bun single-file
//! executable built here the way agents ship (`bun build --compile` of a large JS bundle plus an
//! embedded asset). Wall time with the file evicted from the page cache (cold) and cached (warm),
//! CPU time, peak RSS, and how much of that RSS is the file's own mapped pages (shared page cache)
//! versus guard's own memory.

use std::{
    fs,
    io::{BufWriter, Read as _, Write as _},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    Env,
    hooks::{BUN_VERSION, bun, go_harness},
    median, wait_until_quiet,
};
use crate::sh;

/// The size of the compiled executable, roughly: the Bun runtime, `JS_BYTES` of generated
/// JavaScript, and an incompressible asset for the rest.
const TARGET_BYTES: u64 = 250 * 1000 * 1000;
const JS_BYTES: usize = 48 << 20;
/// Cold and warm runs per file, interleaved.
const RUNS: usize = 5;

pub(super) fn run(env: &Env) -> Result<String> {
    let bun = bun(env, BUN_VERSION)?;
    let files = [go_harness(env)?, bun.clone(), big_app(env, &bun)?];
    let guard = env.release.join("guard");
    let mut report = String::from(
        "\n## Analysis of a stripped binary\n\n`guard hooks FILE` (release build), one process per run, medians of \
         5 cold and 5 warm runs interleaved. Cold: the file's pages evicted from the page cache first \
         (posix_fadvise DONTNEED, checked with mincore); warm: the file fully cached. CPU = user + system. \
         Peak RSS is the kernel's (wait4); the file's mapped pages are sampled from /proc/PID/smaps every 5 ms: \
         they are page cache shared with every process that maps the file, so what guard itself needs is \
         RSS minus them.\n\n\
         | file | size | found | cold wall | cold CPU | warm wall | warm CPU | analysis (in-process, warm) | peak RSS | peak of file pages | peak of RSS − file pages |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut notes = Vec::new();
    for file in &files {
        let size = fs::metadata(file)?.len();
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        measure(&guard, file)?; // fills the page cache
        let mut busy = 0;
        for _ in 0..RUNS {
            busy += usize::from(wait_until_quiet()?);
            evict(file)?;
            let resident = resident_fraction(file)?;
            if resident > 0.01 {
                bail!("{} still {:.0}% in the page cache after eviction", file.display(), resident * 100.0);
            }
            cold.push(measure(&guard, file)?);
            warm.push(measure(&guard, file)?);
        }
        let m = |v: &[Run], f: fn(&Run) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
        let all: Vec<&Run> = cold.iter().chain(&warm).collect();
        let max = |f: fn(&Run) -> u64| all.iter().map(|r| f(r)).max().unwrap_or(0);
        let row = format!(
            "| {} | {:.1} MB | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.0} ms | {:.1} MiB | {:.1} MiB | {:.1} MiB |\n",
            file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            size as f64 / 1e6,
            warm.first().map_or("", |r| r.found.as_str()),
            m(&cold, |r| r.wall),
            m(&cold, |r| r.cpu),
            m(&warm, |r| r.wall),
            m(&warm, |r| r.cpu),
            m(&warm, |r| r.analysis_ms),
            max(|r| r.max_rss_kib) as f64 / 1024.0,
            max(|r| r.peak_file_kib) as f64 / 1024.0,
            max(|r| r.peak_rest_kib) as f64 / 1024.0,
        );
        print!("{row}");
        report += &row;
        if busy > 0 {
            notes.push(format!("{}: {busy} of {RUNS} pairs", file.display()));
        }
    }
    if !notes.is_empty() {
        report += &format!(
            "\nCold/warm pairs that started on a busy machine (other work over 0.3 cores for 10 minutes): {}.\n",
            notes.join("; ")
        );
    }
    Ok(report)
}

/// One `guard hooks FILE` run.
struct Run {
    wall: f64,
    cpu: f64,
    /// The `ms` guard itself reports for the analysis (no process start-up or exit).
    analysis_ms: f64,
    /// `strategy: n hooks`, or the miss.
    found: String,
    max_rss_kib: u64,
    peak_file_kib: u64,
    peak_rest_kib: u64,
}

fn measure(guard: &Path, file: &Path) -> Result<Run> {
    let t = Instant::now();
    let mut child = Command::new(guard).arg("hooks").arg(file).stdout(Stdio::piped()).spawn().context("starting guard hooks")?;
    let pid = i32::try_from(child.id())?;
    let (mut peak_file_kib, mut peak_rest_kib) = (0, 0);
    // SAFETY: rusage is plain old data; zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; both out-pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if r < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        if let Some((total, of_file)) = smaps_rss(child.id(), file) {
            peak_file_kib = peak_file_kib.max(of_file);
            peak_rest_kib = peak_rest_kib.max(total.saturating_sub(of_file));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = t.elapsed().as_secs_f64();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("guard hooks {} failed (status {status:#x})", file.display());
    }
    let mut out = String::new();
    child.stdout.take().context("stdout")?.read_to_string(&mut out)?;
    let v: serde_json::Value = serde_json::from_str(out.trim()).with_context(|| format!("guard hooks said {out:?}"))?;
    let found = match &v["analysis"]["Ok"] {
        serde_json::Value::Object(a) if a.contains_key("found") => {
            let f = &a["found"];
            format!("{}, {} hooks", f["strategy"].as_str().unwrap_or("?"), f["hooks"].as_array().map_or(0, Vec::len))
        }
        other => format!("{other}"),
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Run {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        analysis_ms: v["ms"].as_f64().unwrap_or(f64::NAN),
        found,
        max_rss_kib: u64::try_from(usage.ru_maxrss)?,
        peak_file_kib,
        peak_rest_kib,
    })
}

/// (total Rss, Rss of the mappings of `file`) in KiB, from /proc/PID/smaps.
fn smaps_rss(pid: u32, file: &Path) -> Option<(u64, u64)> {
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let file = file.to_str()?;
    let (mut total, mut of_file, mut in_file) = (0, 0, false);
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Rss:") {
            let kib: u64 = kib.trim().trim_end_matches("kB").trim().parse().ok()?;
            total += kib;
            if in_file {
                of_file += kib;
            }
        } else if line.split_whitespace().next().is_some_and(|a| a.contains('-') && !a.ends_with(':')) {
            // A mapping's header: "start-end perms offset dev inode [path]".
            in_file = line.split_whitespace().nth(5) == Some(file);
        }
    }
    Some((total, of_file))
}

/// Drops the file's pages from the page cache (they are clean once synced).
fn evict(file: &Path) -> Result<()> {
    let f = fs::File::open(file)?;
    f.sync_all()?;
    use std::os::fd::AsRawFd as _;
    // SAFETY: plain syscall on a descriptor we own.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if r != 0 {
        bail!("posix_fadvise: {}", std::io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// The share of the file's pages in the page cache (mincore over a read-only mapping).
fn resident_fraction(file: &Path) -> Result<f64> {
    use std::os::fd::AsRawFd as _;
    let f = fs::File::open(file)?;
    let len = usize::try_from(f.metadata()?.len())?;
    if len == 0 {
        return Ok(0.0);
    }
    // SAFETY: a fresh read-only shared mapping of a file we opened; unmapped below.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
    if addr == libc::MAP_FAILED {
        bail!("mmap: {}", std::io::Error::last_os_error());
    }
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })?;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `vec` has one byte per page of the mapping, which is live until munmap.
    let r = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    // SAFETY: unmaps exactly what mmap returned.
    unsafe { libc::munmap(addr, len) };
    if r != 0 {
        bail!("mincore: {}", std::io::Error::last_os_error());
    }
    Ok(vec.iter().filter(|b| **b & 1 == 1).count() as f64 / vec.len() as f64)
}

/// A Bun single-file executable of about `TARGET_BYTES`: generated JavaScript (many small
/// functions with string literals, like a bundled CLI) and an embedded binary asset (like the
/// native tools and wasm agents ship), compiled by `bun build --compile`. Deterministic; built
/// once into target/bench/bigapp.
fn big_app(env: &Env, bun: &Path) -> Result<PathBuf> {
    let dir = env.out.join("bigapp");
    let out = dir.join("bigapp");
    if out.is_file() {
        return Ok(out.canonicalize()?);
    }
    fs::create_dir_all(&dir)?;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut js = BufWriter::new(fs::File::create(dir.join("code.js"))?);
    writeln!(js, "// Generated by cargo xtask bench analysis: filler code for a large bundle.\nexport const table = [")?;
    let mut written = 0;
    let mut i = 0u64;
    while written < JS_BYTES {
        let word: String = (0..40).map(|_| char::from(b'a' + (rng.next() % 26) as u8)).collect();
        let line = format!(
            "function f{i}(a, b) {{ if (a > {}) return b + \"{word}\"; return f{}(a + 1, b) + {}; }},\n",
            rng.next() % 1000,
            i.saturating_sub(1),
            rng.next() % 100_000
        );
        js.write_all(line.as_bytes())?;
        written += line.len();
        i += 1;
    }
    writeln!(js, "];")?;
    js.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let asset = (TARGET_BYTES as usize).saturating_sub(usize::try_from(fs::metadata(bun)?.size())? + JS_BYTES);
    let mut bin = BufWriter::new(fs::File::create(dir.join("asset.bin"))?);
    for _ in 0..asset / 8 {
        bin.write_all(&rng.next().to_le_bytes())?;
    }
    bin.flush()?;
    fs::write(
        dir.join("entry.js"),
        "// Generated by cargo xtask bench analysis.\n\
         import { table } from \"./code.js\";\n\
         import asset from \"./asset.bin\" with { type: \"file\" };\n\
         console.log(`ok ${table.length} functions, asset ${Bun.file(asset).size} bytes`);\n",
    )?;
    sh(Command::new(bun).args(["build", "--compile", "entry.js", "--outfile", "bigapp"]).current_dir(&dir))?;
    // It must be a working program, not just a big file.
    let said = super::output(&mut Command::new(&out))?;
    if !said.starts_with("ok ") {
        bail!("{} said {said:?}", out.display());
    }
    println!("bench: built {} ({:.1} MB): {}", out.display(), fs::metadata(&out)?.len() as f64 / 1e6, said.trim());
    Ok(out.canonicalize()?)
}

/// xorshift64: a fixed, dependency-free stream for the generated files.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
