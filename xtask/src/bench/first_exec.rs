//! A new program's first exec (issue 17): guard holds it until the file is analysed and its TLS
//! probes attached. Each round copies three programs to new paths (new inodes guard has never
//! seen) and times one fork+exec+wait of each copy (its first exec), then of the same copy again
//! (known: one fstat and one lookup), with no guard and with guard on defaults. The programs: a
//! small C program (a compiler output in a build loop), gcc's `cc1` (a large program without TLS)
//! and Bun (100 MB, BoringSSL found by structure). Figures are medians over rounds of the
//! difference to the same exec without guard.

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
    let dir = env.out.join("first-exec");
    let (mut first, mut again) = (vec![Vec::new(); programs.len()], vec![Vec::new(); programs.len()]);
    for round in 0..ROUNDS {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let base = time_all(&programs, &dir, &format!("{round}-none"))?;
        let g = Guard::start(env, &["--audit-log", "off", "--metrics-addr", "127.0.0.1:0"])?;
        let with = time_all(&programs, &dir, &format!("{round}-guard"));
        g.stop()?;
        let with = with?;
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
    Ok(text)
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
