//! Loading the kernel programs, attaching them, and reading their counters.

pub(crate) mod btf;
pub(crate) mod errno;
pub(crate) mod probes;
pub(crate) mod reader;
pub(crate) mod tracefs;
mod wake;

use std::{collections::HashMap, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{ProbeKind, RawTracePoint, TracePoint, UProbe, uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope}},
};
use guard_common::{
    config::{FIELD_ABSENT, globals},
    event::LOSS_SLOTS,
    gate::{AgentScope, FileKey, StopEvent},
    maps,
};

use self::probes::{AEAD_SYSCALLS, Hook, PROBES, TLS_PROGRAMS, tls_program_names};
use crate::sys::targets::TlsTarget;

#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("this guard was built without its eBPF programs (AYA_BUILD_SKIP); rebuild with `cargo xtask run`")]
    NoObject,
    #[error("cannot read kernel BTF at {path}: {source}")]
    BtfRead { path: String, source: std::io::Error },
    #[error("kernel BTF: {0}")]
    Btf(#[from] btf::BtfError),
    #[error("tracefs: {0}")]
    Tracefs(#[from] tracefs::TracefsError),
    #[error("tracepoint {category}/{name} has no field {field} on this kernel")]
    NoField { category: &'static str, name: &'static str, field: &'static str },
    #[error("loading the eBPF object failed: {0} (are you root, with bpffs and tracefs mounted?)")]
    Load(#[from] aya::EbpfError),
    #[error("program {program} is missing from the eBPF object")]
    NoProgram { program: &'static str },
    #[error("program {program}: {source}")]
    Program { program: &'static str, source: aya::programs::ProgramError },
    #[error("map {map}: {source}")]
    Map { map: &'static str, source: aya::maps::MapError },
}

#[derive(Debug, thiserror::Error)]
#[error("attaching {symbol} in {path}: {source}")]
pub(crate) struct AttachError {
    pub path: String,
    pub symbol: &'static str,
    pub source: aya::programs::ProgramError,
}

#[derive(Clone, Debug)]
pub(crate) struct LoadOptions {
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: u32,
    pub btf_path: String,
    pub tracefs: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { ring_bytes: 16 << 20, btf_path: "/sys/kernel/btf/vmlinux".into(), tracefs: tracefs::TRACEFS.into() }
    }
}

/// What happened to each probe of the table.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ProbeStatus {
    pub program: &'static str,
    pub required: bool,
    pub attached: bool,
    pub error: Option<String>,
}

/// The loaded programs and what they are attached to. Dropping it detaches everything.
pub(crate) struct Kernel {
    ebpf: Ebpf,
    pub probes: Vec<ProbeStatus>,
    attached: HashMap<(u64, u64), Attached>,
    /// The attach cookie of the next file: events say which file they came through.
    next_id: u32,
    /// Whether the syscall tracepoints of the rustls hooks are attached (on first need).
    aead_syscalls: bool,
    /// Whether the library-load stop's program is attached.
    load_stop: bool,
}

/// The exec gate's maps, owned by `crate::gate`.
pub(crate) struct GateMaps {
    pub agents: aya::maps::HashMap<MapData, u32, AgentScope>,
    /// The id of `agents`, for the listener's own handle.
    pub agents_id: u32,
    /// The id of `execs`, for the gate's threads to open handles of their own.
    pub execs_id: u32,
    pub pinned: bool,
    pub stopped: aya::maps::HashMap<MapData, u32, StopEvent>,
    /// The id of `stopped`, for threads that let go what they held.
    pub stopped_id: u32,
    pub events: RingBuf<MapData>,
    pub ctl: aya::maps::Array<MapData, u32>,
    /// The id of `ctl`, for the heartbeat the deadline thread writes.
    pub ctl_id: u32,
    /// Path prefixes and their places, for the deletion programs (`guard_common::delete`).
    pub places: aya::maps::lpm_trie::LpmTrie<MapData, [u8; guard_common::delete::PLACE_KEY_LEN], guard_common::delete::PlaceValue>,
    /// Connections whose writes are never paused (`guard_common::gate::ConnKey`).
    pub pass: aya::maps::HashMap<MapData, guard_common::gate::ConnKey, u8>,
}

/// A hooked file, its id (the attach cookie of all its probes) and its links.
struct Attached {
    id: u32,
    target: TlsTarget,
    links: Vec<(&'static str, UProbeLinkId)>,
}

/// Load-time globals: (name, value).
type Globals = Vec<(&'static str, u32)>;

/// Offsets the programs need, from this kernel's BTF and tracefs, and which optional programs
/// found every member they read.
fn offsets(opts: &LoadOptions) -> Result<(Globals, Found), LoadError> {
    let raw = std::fs::read(&opts.btf_path).map_err(|source| LoadError::BtfRead { path: opts.btf_path.clone(), source })?;
    let btf = btf::Btf::parse(&raw)?;
    let task = |m| btf.member_offset("task_struct", m);
    let root = Path::new(&opts.tracefs);
    let exec = tracefs::read_format(root, "sched", "sched_process_exec")?;
    let exit = tracefs::read_format(root, "sched", "sched_process_exit")?;
    let field = |fmt: &str, name: &'static str, field: &'static str| {
        tracefs::field_offset(fmt, field).ok_or(LoadError::NoField { category: "sched", name, field })
    };
    let walk = members(&btf, &globals::PATH_WALK, "agents' deletions are not watched and libraries loaded later are not held");
    let load = members(&btf, &globals::LOAD_STOP, "libraries loaded later are not held for their hooks");
    let found = Found { walk: !walk.is_empty(), load: !walk.is_empty() && !load.is_empty() };
    let mut all = vec![
        (globals::TASK_REAL_PARENT, task("real_parent")?),
        (globals::TASK_TGID, task("tgid")?),
        (globals::TASK_PID, task("pid")?),
        (globals::TASK_GROUP_LEADER, task("group_leader")?),
        (globals::TASK_START_BOOTTIME, task("start_boottime")?),
        (globals::TASK_EXIT_CODE, task("exit_code")?),
        (globals::TP_EXEC_FILENAME, field(&exec, "sched_process_exec", "filename")?),
        (globals::TP_EXEC_OLD_PID, field(&exec, "sched_process_exec", "old_pid")?),
        (globals::TP_EXIT_GROUP_DEAD, tracefs::field_offset(&exit, "group_dead").unwrap_or(FIELD_ABSENT)),
        (globals::SELF_TGID, std::process::id()),
    ];
    all.extend(walk);
    all.extend(load);
    Ok((all, found))
}

/// Which optional programs this kernel's BTF has every offset for.
struct Found {
    /// The deletion programs' path walk.
    walk: bool,
    /// The library-load stop (it also reads the fd table of the walk).
    load: bool,
}

/// The offsets of `list`, or none when this kernel's BTF lacks one of them (logged with `what`).
fn members(btf: &btf::Btf, list: &[(&'static str, &str, &str)], what: &str) -> Globals {
    let mut out = Vec::new();
    for &(global, strukt, member) in list {
        match btf.member_offset(strukt, member) {
            Ok(off) => out.push((global, off)),
            Err(e) => {
                tracing::warn!(error = %e, "{what}: this kernel's BTF lacks a member the program reads");
                return Vec::new();
            }
        }
    }
    out
}

impl Kernel {
    /// Loads every program and attaches the process probes. Fails if a required probe fails.
    pub(crate) fn load(opts: &LoadOptions) -> Result<Self, LoadError> {
        if crate::EBPF_OBJECT.is_empty() {
            return Err(LoadError::NoObject);
        }
        let (offsets, found) = offsets(opts)?;
        let mut loader = EbpfLoader::new();
        for (name, value) in &offsets {
            loader.override_global(name, value, true);
        }
        loader.map_max_entries(maps::EVENTS, opts.ring_bytes);
        let mut ebpf = loader.load(crate::EBPF_OBJECT)?;

        let mut statuses = Vec::new();
        for p in PROBES {
            if (!found.walk && probes::is_deletion(p.program)) || (!found.load && p.program == probes::LOAD_STOP) {
                continue;
            }
            let result = attach_probe(&mut ebpf, p.program, p.hook);
            let status = ProbeStatus {
                // The hook's name: one program may serve several (the deletion programs).
                program: match p.hook {
                    Hook::Tracepoint { name, .. } | Hook::RawTracepoint { name } => name,
                },
                required: p.required,
                attached: result.is_ok(),
                error: result.as_ref().err().map(|e| e.to_string()),
            };
            match result {
                Err(e) if p.required => return Err(e),
                Err(e) => tracing::warn!(program = p.program, error = %e, "optional probe not attached"),
                Ok(()) => tracing::debug!(program = p.program, purpose = p.purpose, "attached"),
            }
            statuses.push(status);
        }
        for program in tls_program_names() {
            let prog: &mut UProbe = ebpf
                .program_mut(program)
                .ok_or(LoadError::NoProgram { program })?
                .try_into()
                .map_err(|source| LoadError::Program { program, source })?;
            prog.load().map_err(|source| LoadError::Program { program, source })?;
        }
        // Loaded now so that a verifier refusal shows at start; attached when first needed.
        let mut syscall_programs: Vec<&'static str> = AEAD_SYSCALLS.iter().map(|s| s.0).collect();
        syscall_programs.sort_unstable();
        syscall_programs.dedup();
        for program in syscall_programs {
            let prog: &mut TracePoint = ebpf
                .program_mut(program)
                .ok_or(LoadError::NoProgram { program })?
                .try_into()
                .map_err(|source| LoadError::Program { program, source })?;
            prog.load().map_err(|source| LoadError::Program { program, source })?;
        }
        let load_stop = statuses.iter().any(|p| p.program == probes::LOAD_STOP && p.attached);
        Ok(Self { ebpf, probes: statuses, attached: HashMap::new(), next_id: 1, aead_syscalls: false, load_stop })
    }

    /// Attaches the TLS probes to a file, each with the file's id as its cookie. Returns the id
    /// and how many probes were placed, or `None` when the file is attached already. A file that
    /// fails half-way is detached again.
    pub(crate) fn attach_tls(&mut self, target: &TlsTarget) -> Result<Option<(u32, usize)>, AttachError> {
        match self.attached.get(&(target.dev, target.ino)) {
            Some(a) if a.target.stamp == target.stamp => return Ok(None),
            // Rewritten in place: the old offsets would put breakpoints inside instructions.
            Some(a) => {
                let id = a.id;
                self.detach_tls(id);
                tracing::info!(path = %target.path, id, "TLS target rewritten in place: its old hooks are detached");
            }
            None => {}
        }
        let id = self.next_id;
        let mut links = Vec::new();
        if let Err(e) = self.place(target, id, &mut links) {
            self.unlink(links);
            return Err(e);
        }
        self.next_id += 1;
        let placed = links.len();
        self.attached.insert((target.dev, target.ino), Attached { id, target: target.clone(), links });
        Ok(Some((id, placed)))
    }

    fn place(&mut self, target: &TlsTarget, id: u32, links: &mut Vec<(&'static str, UProbeLinkId)>) -> Result<(), AttachError> {
        if target.hooks.iter().any(|h| h.kind.is_aead()) {
            self.attach_aead_syscalls().map_err(|source| AttachError { path: target.path.clone(), symbol: "syscalls", source })?;
        }
        for hook in &target.hooks {
            let Some(&(_, entry, ret)) = TLS_PROGRAMS.iter().find(|t| t.0 == hook.kind) else { continue };
            let programs = [Some(entry), ret];
            for program in programs.into_iter().flatten() {
                let err = |source| AttachError { path: target.path.clone(), symbol: hook.kind.name(), source };
                let prog = uprobe(&mut self.ebpf, program).map_err(err)?;
                debug_assert!(matches!(prog.kind(), ProbeKind::Entry | ProbeKind::Return));
                let location = UProbeAttachLocation::AbsoluteOffset(hook.offset);
                let point = UProbeAttachPoint { location, cookie: Some(u64::from(id)) };
                links.push((program, prog.attach(point, &target.attach_path, UProbeScope::AllProcesses).map_err(err)?));
            }
        }
        Ok(())
    }

    /// Whether this attached file has the rustls (AEAD) hooks.
    pub(crate) fn has_aead_hooks(&self, dev: u64, ino: u64) -> bool {
        self.attached.get(&(dev, ino)).is_some_and(|a| a.target.hooks.iter().any(|h| h.kind.is_aead()))
    }

    /// Starts watching a process's sockets for the rustls hooks (see guard-ebpf's aead.rs).
    pub(crate) fn track_aead(&mut self, pid: u32) {
        let Some(map) = self.ebpf.map_mut(maps::AEAD_TRACKED) else { return };
        if let Ok(mut m) = aya::maps::HashMap::<_, u32, u8>::try_from(map) {
            let _ = m.insert(pid, 1, 0);
        }
    }

    /// The syscall tracepoints the AEAD programs need, once; they stay for the daemon's life.
    fn attach_aead_syscalls(&mut self) -> Result<(), aya::programs::ProgramError> {
        if self.aead_syscalls {
            return Ok(());
        }
        for &(program, name) in AEAD_SYSCALLS {
            let prog: &mut TracePoint = self.ebpf.program_mut(program).ok_or(aya::programs::ProgramError::NotLoaded)?.try_into()?;
            prog.attach("syscalls", name)?;
        }
        self.aead_syscalls = true;
        tracing::info!(syscalls = AEAD_SYSCALLS.len(), "attached the socket tracepoints of the rustls hooks");
        Ok(())
    }

    fn unlink(&mut self, links: Vec<(&'static str, UProbeLinkId)>) {
        for (program, link) in links {
            if let Ok(prog) = uprobe(&mut self.ebpf, program) {
                let _ = prog.detach(link);
            }
        }
    }

    /// Detaches the file with this id (a rejected guess). Returns it, if it was attached.
    pub(crate) fn detach_tls(&mut self, id: u32) -> Option<TlsTarget> {
        let key = self.attached.iter().find(|(_, a)| a.id == id).map(|(k, _)| *k)?;
        let a = self.attached.remove(&key)?;
        self.unlink(a.links);
        Some(a.target)
    }

    /// The id of an attached file.
    pub(crate) fn target_id(&self, dev: u64, ino: u64) -> Option<u32> {
        self.attached.get(&(dev, ino)).map(|a| a.id)
    }

    pub(crate) fn attached_targets(&self) -> impl Iterator<Item = &TlsTarget> {
        self.attached.values().map(|a| &a.target)
    }


    /// Attached targets per (library, strategy): the labels of `guard_tls_targets_attached`. A
    /// file that carries two libraries counts under each, with how that one's hooks were found.
    pub(crate) fn attached_by_strategy(&self) -> HashMap<(guard_core::hooks::Library, guard_core::hooks::Strategy), usize> {
        let mut m = HashMap::new();
        for t in self.attached_targets() {
            for label in std::iter::once((t.library, t.strategy)).chain(t.also) {
                *m.entry(label).or_default() += 1;
            }
        }
        m
    }

    /// The ring buffer, for the reader. Can be taken once.
    pub(crate) fn take_ring(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let err = |source| LoadError::Map { map: maps::EVENTS, source };
        let map = self.ebpf.take_map(maps::EVENTS).ok_or(err(aya::maps::MapError::InvalidName { name: maps::EVENTS.into() }))?;
        RingBuf::try_from(map).map_err(err)
    }

    /// The exec gate's maps (`guard_common::gate`). Can be taken once. The registry of stopped
    /// processes is pinned at `pin` (a bpffs path whose directory exists), so that it outlives
    /// guard; a pin that fails is logged, and the registry then lives as long as guard.
    pub(crate) fn take_gate(&mut self, pin: &Path) -> Result<GateMaps, LoadError> {
        let mut take = |map: &'static str| {
            self.ebpf.take_map(map).ok_or(LoadError::Map { map, source: aya::maps::MapError::InvalidName { name: map.into() } })
        };
        let (agents, execs, stopped, events, ctl, places, pass) = (
            take(maps::AGENT_TGIDS)?,
            take(maps::GATE_EXECS)?,
            take(maps::GATE_STOPPED)?,
            take(maps::GATE_EVENTS)?,
            take(maps::GATE_CTL)?,
            take(maps::PLACES)?,
            take(maps::REQ_CONNS)?,
        );
        let err = |map| move |source| LoadError::Map { map, source };
        let execs_id = match &execs {
            aya::maps::Map::HashMap(d) => d.info().map_err(err(maps::GATE_EXECS))?.id(),
            _ => return Err(err(maps::GATE_EXECS)(aya::maps::MapError::InvalidName { name: maps::GATE_EXECS.into() })),
        };
        let agents_id = match &agents {
            aya::maps::Map::HashMap(d) => d.info().map_err(err(maps::AGENT_TGIDS))?.id(),
            _ => return Err(err(maps::AGENT_TGIDS)(aya::maps::MapError::InvalidName { name: maps::AGENT_TGIDS.into() })),
        };
        let ctl_id = match &ctl {
            aya::maps::Map::Array(d) => d.info().map_err(err(maps::GATE_CTL))?.id(),
            _ => return Err(err(maps::GATE_CTL)(aya::maps::MapError::InvalidName { name: maps::GATE_CTL.into() })),
        };
        let stopped_id = match &stopped {
            aya::maps::Map::HashMap(d) => d.info().map_err(err(maps::GATE_STOPPED))?.id(),
            _ => return Err(err(maps::GATE_STOPPED)(aya::maps::MapError::InvalidName { name: maps::GATE_STOPPED.into() })),
        };
        let pinned = match &stopped {
            aya::maps::Map::HashMap(d) => d.pin(pin).map_err(|e| e.to_string()),
            _ => Err("not a hash map".into()),
        };
        if let Err(e) = &pinned {
            tracing::warn!(path = %pin.display(), error = %e, "the registry of stopped execs is not pinned: if guard dies, `guard gate release` cannot find them");
        }
        Ok(GateMaps {
            agents: aya::maps::HashMap::try_from(agents).map_err(err(maps::AGENT_TGIDS))?,
            agents_id,
            execs_id,
            stopped: aya::maps::HashMap::try_from(stopped).map_err(err(maps::GATE_STOPPED))?,
            stopped_id,
            pinned: pinned.is_ok(),
            events: RingBuf::try_from(events).map_err(err(maps::GATE_EVENTS))?,
            ctl: aya::maps::Array::try_from(ctl).map_err(err(maps::GATE_CTL))?,
            ctl_id,
            places: aya::maps::lpm_trie::LpmTrie::try_from(places).map_err(err(maps::PLACES))?,
            pass: aya::maps::HashMap::try_from(pass).map_err(err(maps::REQ_CONNS))?,
        })
    }

    /// The files the library-load stop lets through (`guard_common::gate::FileKey`), when its
    /// program is attached.
    pub(crate) fn take_known_files(&mut self) -> Option<aya::maps::HashMap<MapData, FileKey, u8>> {
        if !self.load_stop {
            return None;
        }
        let map = self.ebpf.take_map(maps::KNOWN_FILES)?;
        match aya::maps::HashMap::try_from(map) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "libraries loaded later are not held: their map is unusable");
                None
            }
        }
    }

    /// Kernel-side losses, summed over CPUs, indexed by `guard_common::event::LossSlot`.
    pub(crate) fn losses(&self) -> Result<[u64; LOSS_SLOTS as usize], LoadError> {
        let err = |source| LoadError::Map { map: maps::LOSSES, source };
        let map = self.ebpf.map(maps::LOSSES).ok_or(err(aya::maps::MapError::InvalidName { name: maps::LOSSES.into() }))?;
        let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(err)?;
        let mut out = [0u64; LOSS_SLOTS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = arr.get(&(i as u32), 0).map_err(err)?.iter().sum();
        }
        Ok(out)
    }
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, program: &'static str) -> Result<&'a mut UProbe, aya::programs::ProgramError> {
    ebpf.program_mut(program).ok_or(aya::programs::ProgramError::NotLoaded)?.try_into()
}

fn attach_probe(ebpf: &mut Ebpf, program: &'static str, hook: Hook) -> Result<(), LoadError> {
    let prog = ebpf.program_mut(program).ok_or(LoadError::NoProgram { program })?;
    let err = |source| LoadError::Program { program, source };
    match hook {
        Hook::Tracepoint { category, name } => {
            let tp: &mut TracePoint = prog.try_into().map_err(err)?;
            // One program may serve several tracepoints (the deletion programs).
            if tp.fd().is_err() {
                tp.load().map_err(err)?;
            }
            tp.attach(category, name).map_err(err)?;
        }
        Hook::RawTracepoint { name } => {
            let tp: &mut RawTracePoint = prog.try_into().map_err(err)?;
            tp.load().map_err(err)?;
            tp.attach(name).map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test")]
mod tests {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

    use super::*;

    /// The names of the symbols of the embedded eBPF object, with their sections' names; `None`
    /// when this build has no object (AYA_BUILD_SKIP).
    fn symbols() -> Option<Vec<(String, String)>> {
        if crate::EBPF_OBJECT.is_empty() {
            eprintln!("skipped: built with AYA_BUILD_SKIP, no eBPF object to look at");
            return None;
        }
        let obj = object::File::parse(crate::EBPF_OBJECT).unwrap();
        let section = |s: &object::Symbol<'_, '_>| {
            let index = s.section_index()?;
            obj.section_by_index(index).ok()?.name().ok().map(str::to_owned)
        };
        Some(obj.symbols().filter_map(|s| Some((section(&s)?, s.name().ok()?.to_owned()))).collect())
    }

    /// aya-ebpf takes map names only as literals, so nothing but this ties the loader's names to
    /// the kernel's maps.
    #[test]
    fn every_map_name_is_a_map_of_the_object() {
        let Some(symbols) = symbols() else { return };
        for name in maps::ALL {
            assert!(symbols.iter().any(|(section, s)| section == "maps" && s == name), "no map {name} in the object: {symbols:?}");
        }
    }

    #[test]
    fn the_shipped_object_has_no_bench_programs() {
        let Some(symbols) = symbols() else { return };
        assert!(symbols.iter().any(|(_, s)| s == "ssl_write"));
        assert!(!symbols.iter().any(|(_, s)| s.starts_with("floor_")), "{symbols:?}");
    }
}
