//! A new program's first exec (issue 17): guard holds it until the file is analysed and its TLS
//! probes attached. Each round copies three programs to new paths (new inodes guard has never
//! seen) and times one fork+exec+wait of each copy (its first exec), then of the same copy again
//! (known: one fstat and one lookup), with no guard and with guard on defaults. The programs: a
//! small C program (a compiler output in a build loop), gcc's `cc1` (a large program without TLS)
//! and Bun (100 MB, BoringSSL found by structure). Figures are medians over rounds of the
//! difference to the same exec without guard.
//!
//! The same for a library a running program loads (the library-load stop): `bench/load_cost.c`
//! times dlopen+dlclose of a fresh copy of zlib (no TLS) and of libssl (hooked), then of the same
//! copy again, and the cost every `PROT_EXEC` mapping of a known file pays.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use super::{Env, Guard, hooks::{BUN_VERSION, bun}, median};
use crate::sh;

const ROUNDS: usize = 7;
/// Execs of the known copy per round; the median counts.
const AGAIN: usize = 9;

struct Program {
    name: &'static str,
    src: PathBuf,
    args: &'static [&'static str],
}

pub(super) fn run(env: &Env) -> Result<String> {
    let small = env.out.join("first_exec_true");
    std::fs::write(env.out.join("first_exec_true.c"), "int main(void) { return 0; }\n")?;
    sh(Command::new("gcc").args(["-O2", "-o"]).arg(&small).arg(env.out.join("first_exec_true.c")))?;
    let cc1 = output_path(Command::new("gcc").arg("-print-prog-name=cc1"))?;
    let programs = [
        Program { name: "small C program", src: small, args: &[] },
        Program { name: "cc1 (no TLS)", src: cc1, args: &["--version"] },
        Program { name: "Bun (BoringSSL)", src: bun(env, BUN_VERSION)?, args: &["--version"] },
    ];
    let loader = env.out.join("load_cost");
    sh(Command::new("gcc").args(["-O2", "-o"]).arg(&loader).arg(env.root.join("bench/load_cost.c")))?;
    let libraries = [
        Program { name: "zlib (no TLS)", src: PathBuf::from("/lib/x86_64-linux-gnu/libz.so.1"), args: &[] },
        Program { name: "libssl 3 (hooked)", src: PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3"), args: &[] },
    ];
    let dir = env.out.join("first-exec");
    let (mut load_first, mut load_again) = (vec![Vec::new(); libraries.len()], vec![Vec::new(); libraries.len()]);
    let mut mapping = Vec::new();
    let (mut first, mut again) = (vec![Vec::new(); programs.len()], vec![Vec::new(); programs.len()]);
    for round in 0..ROUNDS {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let base = time_all(&programs, &dir, &format!("{round}-none"))?;
        let base_loads = load_all(&loader, &libraries, &dir, &format!("{round}-none"))?;
        let base_map = map_cost(&loader)?;
        let g = Guard::start(env, &["--audit-log", "off", "--metrics-addr", "127.0.0.1:0"])?;
        let with = time_all(&programs, &dir, &format!("{round}-guard"));
        let with_loads = load_all(&loader, &libraries, &dir, &format!("{round}-guard"));
        let with_map = map_cost(&loader);
        g.stop()?;
        let (with, with_loads, with_map) = (with?, with_loads?, with_map?);
        for (i, ((bf, ba), (gf, ga))) in base_loads.iter().zip(&with_loads).enumerate() {
            load_first[i].push(gf - bf);
            load_again[i].push(ga - ba);
        }
        mapping.push((base_map, with_map));
        for (i, ((bf, ba), (gf, ga))) in base.iter().zip(&with).enumerate() {
            first[i].push(gf - bf);
            again[i].push(ga - ba);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut text = format!(
        "\n## First exec of a new program\n\nfork+exec+wait of a fresh copy (new inode), then of the same copy again; \
         guard on defaults vs none, {ROUNDS} rounds, median added time:\n\n| program | size | first exec | known file |\n|---|---|---|---|\n"
    );
    for (i, p) in programs.iter().enumerate() {
        let size = std::fs::metadata(&p.src).map_or(0, |m| m.len());
        text += &format!(
            "| {} | {:.1} MB | {:+.2} ms | {:+.0} µs |\n",
            p.name,
            size as f64 / 1e6,
            median(&first[i]) * 1e3,
            median(&again[i]) * 1e6
        );
    }
    text += "\nA library loaded by a running program (dlopen+dlclose of a fresh copy, then of the same copy again), median added time:\n\n| library | first load | known file |\n|---|---|---|\n";
    for (i, l) in libraries.iter().enumerate() {
        text += &format!("| {} | {:+.2} ms | {:+.1} µs |\n", l.name, median(&load_first[i]) * 1e3, median(&load_again[i]) * 1e6);
    }
    let none: Vec<f64> = mapping.iter().map(|m| m.0).collect();
    let with: Vec<f64> = mapping.iter().map(|m| m.1).collect();
    text += &format!(
        "\nmmap(PROT_READ|PROT_EXEC)+munmap of a known file, {MAPS} per round: {:.0} ns without guard, {:.0} ns with (median of rounds)\n",
        median(&none),
        median(&with)
    );
    Ok(text)
}

/// Mappings timed per round for the per-mapping cost.
const MAPS: u32 = 100_000;

/// (first load, median of the later loads) in seconds, for a fresh copy of each library.
fn load_all(loader: &Path, libraries: &[Program], dir: &Path, tag: &str) -> Result<Vec<(f64, f64)>> {
    libraries
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let copy = dir.join(format!("l{i}-{tag}.so"));
            std::fs::copy(&l.src, &copy).with_context(|| format!("copying {}", l.src.display()))?;
            let out = super::output(Command::new(loader).arg("load").arg(&copy).arg(AGAIN.to_string()))?;
            let ns: Vec<f64> = out.split_whitespace().map(str::parse).collect::<Result<_, _>>().context("load_cost's output")?;
            match ns[..] {
                [first, again] => Ok((first / 1e9, again / 1e9)),
                _ => bail!("load_cost printed {out:?}"),
            }
        })
        .collect()
}

/// ns per PROT_EXEC mapping of a known file.
fn map_cost(loader: &Path) -> Result<f64> {
    let out = super::output(Command::new(loader).args(["mmap", "/lib/x86_64-linux-gnu/libz.so.1"]).arg(MAPS.to_string()))?;
    out.trim().parse().with_context(|| format!("load_cost printed {out:?}"))
}

/// (first exec, median of the later execs) in seconds, for a fresh copy of each program.
fn time_all(programs: &[Program], dir: &Path, tag: &str) -> Result<Vec<(f64, f64)>> {
    programs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let copy = dir.join(format!("p{i}-{tag}"));
            std::fs::copy(&p.src, &copy).with_context(|| format!("copying {}", p.src.display()))?;
            let first = exec_once(&copy, p.args)?;
            let again: Vec<f64> = (0..AGAIN).map(|_| exec_once(&copy, p.args)).collect::<Result<_>>()?;
            Ok((first, median(&again)))
        })
        .collect()
}

fn exec_once(path: &Path, args: &[&str]) -> Result<f64> {
    let t = Instant::now();
    let status = Command::new(path).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    let secs = t.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{} failed: {status}", path.display());
    }
    Ok(secs)
}

fn output_path(cmd: &mut Command) -> Result<PathBuf> {
    Ok(PathBuf::from(super::output(cmd)?.trim()))
}
