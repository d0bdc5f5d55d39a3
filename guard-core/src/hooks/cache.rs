//! Analyses are cached by what the file is, not where it is: its GNU build-id with the placement
//! of its code, or failing that a hash of its size and sampled pages. A 100 MB binary
//! run from many paths, or again after an upgrade that did not change it, is analysed once.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hasher as _},
};

use object::{Object as _, ObjectSegment as _};

use super::{Analysis, HookError, analyse, elf};

/// What a file is, independently of its path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileKey {
    /// The build-id alone does not fix the hooks: they are file offsets, and files of one build
    /// can place the same code at different offsets. Two Bun single-file executables of one Bun
    /// release share Bun's build-id, and one (Kilo CLI 7.7.7) has its code 0x2000 bytes further
    /// into the file than the other (OpenCode 1.18.33): handed the other's offsets, its probes
    /// landed mid-instruction. `layout` hashes each executable segment's file range and address.
    BuildId { id: Vec<u8>, layout: u64 },
    /// Size, and a hash of the first and last 64 KiB and one 4 KiB page per MiB between.
    Sampled {
        size: u64,
        hash: u64,
    },
}

impl FileKey {
    pub fn of(data: &[u8]) -> Self {
        if let Ok(file) = object::File::parse(data)
            && let Some(id) = elf::build_id(&file)
            && !id.is_empty()
        {
            return Self::BuildId { id, layout: layout(&file) };
        }
        const EDGE: usize = 64 << 10;
        let mut h = DefaultHasher::new();
        h.write(&data[..data.len().min(EDGE)]);
        h.write(&data[data.len().saturating_sub(EDGE)..]);
        for page in (EDGE..data.len().saturating_sub(EDGE)).step_by(1 << 20) {
            h.write(&data[page..data.len().min(page + 4096)]);
        }
        Self::Sampled {
            size: data.len() as u64,
            hash: h.finish(),
        }
    }
}

/// Where the executable segments sit in the file and in memory: every hook is a file offset in
/// one of them, and what the analysis reads elsewhere it reads by address. A `bun build
/// --compile` executable that adds its payload to a data segment stays a cache hit of its bun.
fn layout(file: &object::File<'_>) -> u64 {
    const PF_X: u32 = 1;
    let executable = |seg: &object::Segment<'_, '_>| matches!(seg.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & PF_X != 0);
    let mut h = DefaultHasher::new();
    for seg in file.segments().filter(executable) {
        let (offset, size) = seg.file_range();
        for v in [offset, size, seg.address(), seg.size()] {
            h.write_u64(v);
        }
    }
    h.finish()
}

/// Results by file identity. Errors are cached too: a file that does not parse will not parse
/// next time either.
#[derive(Clone, Default)]
pub struct Cache {
    entries: HashMap<FileKey, Result<Analysis, String>>,
    pub hits: u64,
    pub misses: u64,
}

impl Cache {
    /// The analysis of `data`, computed at most once per file identity.
    pub fn analyse(&mut self, data: &[u8]) -> Result<Analysis, String> {
        let key = FileKey::of(data);
        if let Some(r) = self.get(&key) {
            return r;
        }
        let r = Self::compute(data);
        self.insert(key, r.clone());
        r
    }

    /// A cached result (counted as a hit).
    pub fn get(&mut self, key: &FileKey) -> Option<Result<Analysis, String>> {
        let r = self.entries.get(key).cloned();
        self.hits += u64::from(r.is_some());
        r
    }

    /// The analysis itself, for callers that do not hold the cache while it runs.
    pub fn compute(data: &[u8]) -> Result<Analysis, String> {
        analyse(data).map_err(|e: HookError| e.to_string())
    }

    /// Stores a computed result (counted as a miss).
    pub fn insert(&mut self, key: FileKey, r: Result<Analysis, String>) {
        self.misses += 1;
        self.entries.insert(key, r);
    }
}
