#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    os::unix::fs::{PermissionsExt as _, symlink},
    path::Path,
};

use super::{
    discover::{catalog_locations, homes, package_root},
    *,
};

/// A file with the ELF magic (enough for discovery, which does not parse it).
const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";
const JS: &[u8] = b"#!/usr/bin/env node\n";

fn file(root: &Path, rel: &str, bytes: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, bytes).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(target, p).unwrap();
}

/// A host tree: npm global installs (links into packages, a platform package with the native
/// binary), Bun's global bin, the Claude installer, a project's `node_modules/.bin`, an npx cache.
fn host_tree(root: &Path) {
    let nm = "usr/local/lib/node_modules";
    link(root, "usr/local/bin/codex", "../lib/node_modules/@openai/codex/bin/codex.js");
    file(root, &format!("{nm}/@openai/codex/bin/codex.js"), JS, 0o755);
    file(root, &format!("{nm}/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex"), ELF, 0o755);
    file(root, &format!("{nm}/@openai/codex/README.md"), b"x", 0o644);
    link(root, "usr/local/bin/opencode", "../lib/node_modules/opencode-ai/bin/opencode");
    file(root, &format!("{nm}/opencode-ai/bin/opencode"), JS, 0o755);
    file(root, &format!("{nm}/opencode-linux-x64/bin/opencode"), ELF, 0o755);
    // Any npm-global package is looked into; other programs in a shared bin are not.
    link(root, "usr/local/bin/leftpad", "../lib/node_modules/leftpad/bin/cli.js");
    file(root, &format!("{nm}/leftpad/bin/cli.js"), JS, 0o755);
    file(root, &format!("{nm}/leftpad/native/pad"), ELF, 0o755);
    file(root, "usr/local/bin/terraform", ELF, 0o755);
    // The interpreters agents run on are taken from a shared bin (node's own OpenSSL).
    file(root, "usr/local/bin/node", ELF, 0o755);
    // A user's own bins: all of them, but not a file that cannot run.
    file(root, "home/u/.local/bin/mytool", ELF, 0o755);
    file(root, "home/u/.local/bin/notes", ELF, 0o644);
    file(root, "home/u/.local/share/claude/versions/2.0.1", ELF, 0o755);
    file(root, "home/u/.local/share/claude/versions/1.0.0", ELF, 0o755);
    link(root, "home/u/.local/bin/claude", "../share/claude/versions/2.0.1");
    // Bun's global install, with a scoped platform package beside the agent's.
    let bun = "home/u/.bun/install/global/node_modules";
    link(root, "home/u/.bun/bin/kilo", "../install/global/node_modules/@kilocode/cli/bin/kilo.js");
    file(root, &format!("{bun}/@kilocode/cli/bin/kilo.js"), JS, 0o755);
    file(root, &format!("{bun}/@kilocode/cli-linux-x64/bin/kilo"), ELF, 0o755);
    // A project: its agent is taken with its package, its other tools are not.
    let pnm = "home/u/proj/node_modules";
    link(root, &format!("{pnm}/.bin/gemini"), "../@google/gemini-cli/dist/index.js");
    file(root, &format!("{pnm}/@google/gemini-cli/dist/index.js"), JS, 0o755);
    file(root, &format!("{pnm}/@google/gemini-cli/vendor/rg"), ELF, 0o755);
    link(root, &format!("{pnm}/.bin/tsc"), "../typescript/bin/tsc");
    file(root, &format!("{pnm}/typescript/bin/tsc"), JS, 0o755);
    file(root, &format!("{pnm}/typescript/native/fast"), ELF, 0o755);
    fs::create_dir_all(root.join("home/u/proj/src")).unwrap();
    // `npx @anthropic-ai/claude-code` caches the package.
    file(root, "root/.npm/_npx/4f2a/node_modules/@anthropic-ai/claude-code/cli.js", JS, 0o755);
    file(root, "root/.npm/_npx/4f2a/node_modules/@anthropic-ai/claude-code/vendor/rg", ELF, 0o755);
}

#[test]
fn candidates_of_a_host_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    host_tree(&root);
    let cwds = [root.join("home/u/proj/src")];
    let got = candidates(&root, &cwds, &Catalog::builtin());
    let rel = |c: &Candidate| c.path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
    let first: BTreeSet<String> = got.iter().filter(|c| c.first).map(rel).collect();
    let others: BTreeSet<String> = got.iter().filter(|c| !c.first).map(rel).collect();
    let nm = "usr/local/lib/node_modules";
    let want_first: BTreeSet<String> = [
        format!("{nm}/@openai/codex/bin/codex.js"),
        format!("{nm}/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex"),
        format!("{nm}/opencode-ai/bin/opencode"),
        format!("{nm}/opencode-linux-x64/bin/opencode"),
        "usr/local/bin/node".into(),
        "home/u/.local/share/claude/versions/2.0.1".into(),
        "home/u/.local/share/claude/versions/1.0.0".into(),
        "home/u/.bun/install/global/node_modules/@kilocode/cli/bin/kilo.js".into(),
        "home/u/.bun/install/global/node_modules/@kilocode/cli-linux-x64/bin/kilo".into(),
        "home/u/proj/node_modules/@google/gemini-cli/dist/index.js".into(),
        "home/u/proj/node_modules/@google/gemini-cli/vendor/rg".into(),
        "root/.npm/_npx/4f2a/node_modules/@anthropic-ai/claude-code/cli.js".into(),
        "root/.npm/_npx/4f2a/node_modules/@anthropic-ai/claude-code/vendor/rg".into(),
    ]
    .into();
    let want_others: BTreeSet<String> =
        [format!("{nm}/leftpad/bin/cli.js"), format!("{nm}/leftpad/native/pad"), "home/u/.local/bin/mytool".into()]
            .into();
    assert_eq!(first, want_first);
    assert_eq!(others, want_others);
    let first_other = got.iter().position(|c| !c.first).unwrap();
    assert!(got[first_other..].iter().all(|c| !c.first), "agents and interpreters come first");
    // Each file once, by its resolved path.
    assert_eq!(got.len(), want_first.len() + want_others.len());
}

#[test]
fn the_catalog_names_install_directories_and_packages() {
    let (dirs, packages) = catalog_locations(&Catalog::builtin());
    for d in [".local/share/claude/versions", ".opencode/bin", ".kilo/bin", ".local/share/cursor-agent"] {
        assert!(dirs.iter().any(|x| x == d), "{d} missing from {dirs:?}");
    }
    for p in ["@anthropic-ai/claude-code", "@openai/codex", "opencode-ai", "@google/gemini-cli", "cline"] {
        assert!(packages.iter().any(|x| x == p), "{p} missing from {packages:?}");
    }
    assert!(!packages.iter().any(|p| p.contains('*') || p.contains("site-packages")), "{packages:?}");
}

#[test]
fn package_roots() {
    let root = |p: &str| package_root(Path::new(p)).map(|p| p.to_string_lossy().into_owned());
    assert_eq!(root("/usr/lib/node_modules/@openai/codex/bin/codex.js").as_deref(), Some("/usr/lib/node_modules/@openai/codex"));
    assert_eq!(
        root("/g/node_modules/opencode-ai/node_modules/opencode-linux-x64/bin/opencode").as_deref(),
        Some("/g/node_modules/opencode-ai/node_modules/opencode-linux-x64")
    );
    assert_eq!(root("/p/node_modules/leftpad").as_deref(), Some("/p/node_modules/leftpad"));
    assert_eq!(root("/p/node_modules/.bin/x"), None);
    assert_eq!(root("/p/node_modules/@scope"), None);
    assert_eq!(root("/usr/bin/node"), None);
}

#[test]
fn homes_are_home_dirs_and_root() {
    let dir = tempfile::tempdir().unwrap();
    for d in ["home/a", "home/b", "root"] {
        fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    fs::write(dir.path().join("home/file"), b"").unwrap();
    let got: Vec<_> = homes(dir.path()).iter().map(|h| h.strip_prefix(dir.path()).unwrap().to_path_buf()).collect();
    assert_eq!(got, [Path::new("home/a"), Path::new("home/b"), Path::new("root")]);
}

#[test]
fn the_elf_magic_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "elf", ELF, 0o755);
    file(dir.path(), "js", JS, 0o755);
    file(dir.path(), "short", b"\x7fE", 0o755);
    assert!(is_elf(&dir.path().join("elf")));
    assert!(!is_elf(&dir.path().join("js")));
    assert!(!is_elf(&dir.path().join("short")));
    assert!(!is_elf(&dir.path().join("absent")));
}

fn ahead(max_files: usize, budget: Duration) -> Ahead {
    Ahead { catalog: Catalog::builtin(), root: PathBuf::from("/"), max_files, budget }
}

fn candidate(p: &str) -> Candidate {
    Candidate { path: PathBuf::from(p), first: false }
}

#[test]
fn analysis_offers_new_targets_once_and_keeps_to_its_bounds() {
    let Some(lib) = ["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("SKIP: no system libssl.so.3");
        return;
    };
    let Some(plain) = ["/usr/bin/true", "/bin/true"].into_iter().find(|p| is_elf(Path::new(p))) else {
        eprintln!("SKIP: no /usr/bin/true");
        return;
    };
    let list = [candidate(lib), candidate("/etc/hostname"), candidate(plain)];
    let scanner = Scanner::default();
    let mut offered = vec![];
    let s = ahead(10, BUDGET).analyse(&scanner, &list, Instant::now(), |t| {
        offered.push(t.path);
        true
    });
    assert_eq!(s, Some(Summary { considered: 3, analysed: 2, known: 0, hooked: 1, cut_short: false }));
    assert_eq!(offered, [lib]);
    // Known files are not analysed again, nor offered.
    let s = ahead(10, BUDGET).analyse(&scanner, &list, Instant::now(), |_| panic!("offered twice"));
    assert_eq!(s, Some(Summary { considered: 3, analysed: 0, known: 2, hooked: 0, cut_short: false }));
    // The file cap and the time budget cut a run short.
    let s = ahead(1, BUDGET).analyse(&Scanner::default(), &list, Instant::now(), |_| true).unwrap();
    assert_eq!((s.considered, s.analysed, s.cut_short), (1, 1, true));
    let s = ahead(10, Duration::ZERO).analyse(&Scanner::default(), &list, Instant::now(), |_| true).unwrap();
    assert_eq!((s.considered, s.cut_short), (0, true));
    // A daemon that is gone stops the run.
    assert_eq!(ahead(10, BUDGET).analyse(&Scanner::default(), &list, Instant::now(), |_| false), None);
}

/// The start-up cost on this machine, for every home: `cargo test --release -p guard-userspace
/// --lib ahead_cost -- --ignored --nocapture` (unbounded, then with the daemon's bounds).
/// `AHEAD_ROOT=DIR` reads a tree under DIR instead of `/`.
#[test]
#[ignore = "reads the real home directories and analyses what it finds; prints the cost"]
fn ahead_cost_on_this_machine() {
    let catalog = Catalog::builtin();
    let root = std::env::var_os("AHEAD_ROOT").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    let t = Instant::now();
    let list = candidates(&root, &running_cwds(), &catalog);
    let discovery = t.elapsed();
    let elf: Vec<&Candidate> = list.iter().filter(|c| is_elf(&c.path)).collect();
    let first = list.iter().filter(|c| c.first).count();
    println!("discovery: {} candidates ({} ELF, {first} first) in {discovery:?}", list.len(), elf.len());
    for c in elf {
        let size = fs::metadata(&c.path).map(|m| m.len()).unwrap_or(0);
        println!("  {} first={} {} MiB", c.path.display(), c.first, size >> 20);
    }
    for (name, a) in [("unbounded", ahead(usize::MAX, Duration::MAX)), ("daemon bounds", Ahead::new(catalog.clone()))] {
        let t = Instant::now();
        let list = candidates(&root, &running_cwds(), &catalog);
        let s = a.analyse(&Scanner::default(), &list, t, |_| true).unwrap();
        println!("{name}: {s:?} in {:?}", t.elapsed());
    }
}
