//! Go's function table (`.gopclntab`): every function's name and entry address, kept by the Go
//! linker even in `-s -w` builds because the runtime needs it for stack traces and GC.
//!
//! Layouts read (runtime/symtab.go `pcHeader`, amd64): Go 1.16–1.17 (magic 0xfffffffa) with
//! pointer-sized function table entries, and Go 1.18+ (0xfffffff0, 1.20+: 0xfffffff1) with 32-bit
//! entries relative to `textStart`. Older tables are not read.

use object::{Object as _, ObjectSection as _};

use super::elf;

const MAGIC_116: u32 = 0xffff_fffa;
const MAGIC_118: u32 = 0xffff_fff0;
const MAGIC_120: u32 = 0xffff_fff1;
/// Go 1.2–1.15: a layout we do not read, but still a Go binary.
const MAGIC_12: u32 = 0xffff_fffb;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PclnError {
    #[error("the table ends before its {what}")]
    Truncated { what: &'static str },
    #[error("Go before 1.16 (magic {magic:#x}): this function table layout is not read")]
    TooOld { magic: u32 },
    #[error("unknown magic {magic:#x}")]
    BadMagic { magic: u32 },
    #[error("pointer size {ptr_size} / instruction quantum {quantum}: not amd64")]
    NotAmd64 { ptr_size: u8, quantum: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Go116,
    Go118,
}

/// A parsed header over the table's bytes.
pub(super) struct Table<'d> {
    data: &'d [u8],
    layout: Layout,
    nfunc: usize,
    text_start: u64,
    funcnames: usize,
    functab: usize,
}

/// A function's address range (`end` is the next function's entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Func {
    pub entry: u64,
    pub end: u64,
}

fn u32_at(d: &[u8], off: usize, what: &'static str) -> Result<u32, PclnError> {
    let b = d
        .get(off..off.saturating_add(4))
        .ok_or(PclnError::Truncated { what })?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(d: &[u8], off: usize, what: &'static str) -> Result<u64, PclnError> {
    let b = d
        .get(off..off.saturating_add(8))
        .ok_or(PclnError::Truncated { what })?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(u64::from_le_bytes(a))
}

fn usize_at(d: &[u8], off: usize, what: &'static str) -> Result<usize, PclnError> {
    usize::try_from(u64_at(d, off, what)?).map_err(|_| PclnError::Truncated { what })
}

impl<'d> Table<'d> {
    /// The table of a Go binary: `Ok(None)` when the file is not one.
    pub(super) fn locate(file: &object::File<'d>, data: &'d [u8]) -> Result<Option<Self>, PclnError> {
        if let Some((_, bytes)) = elf::section(file, ".gopclntab") {
            let text = file
                .section_by_name(".text")
                .map(|s| s.address())
                .unwrap_or(0);
            return Self::parse(bytes, text).map(Some);
        }
        // Section headers can be removed (sstrip): look for a header that parses, by its magic.
        // The three magics share their last three bytes and the header's next four, so one pass
        // finds every candidate (every new program's first exec pays for this pass, issue 17).
        let tail = [0xff, 0xff, 0xff, 0, 0, 1, 8];
        let candidates: Vec<usize> = memchr::memmem::find_iter(data, &tail).filter_map(|at| at.checked_sub(1)).collect();
        for magic in [MAGIC_120, MAGIC_118, MAGIC_116] {
            for &at in candidates.iter().filter(|&&at| data[at] == magic.to_le_bytes()[0]) {
                if let Ok(t) = Self::parse(&data[at..], 0)
                    && t.text_start != 0
                    && t.name(0).is_some()
                {
                    return Ok(Some(t));
                }
            }
        }
        Ok(None)
    }

    /// Parses the header; `text` (the `.text` address) stands in for a `textStart` left to a
    /// dynamic relocation (PIE).
    pub(super) fn parse(data: &'d [u8], text: u64) -> Result<Self, PclnError> {
        let magic = u32_at(data, 0, "magic")?;
        let layout = match magic {
            MAGIC_116 => Layout::Go116,
            MAGIC_118 | MAGIC_120 => Layout::Go118,
            MAGIC_12 => return Err(PclnError::TooOld { magic }),
            _ => return Err(PclnError::BadMagic { magic }),
        };
        let (quantum, ptr_size) = (*data.get(6).unwrap_or(&0), *data.get(7).unwrap_or(&0));
        if quantum != 1 || ptr_size != 8 {
            return Err(PclnError::NotAmd64 { ptr_size, quantum });
        }
        let nfunc = usize_at(data, 8, "function count")?;
        let (text_start, rest) = match layout {
            Layout::Go116 => (0, 24),
            Layout::Go118 => (u64_at(data, 24, "text start")?, 32),
        };
        let funcnames = usize_at(data, rest, "name table offset")?;
        let functab = usize_at(data, rest + 32, "function table offset")?;
        let t = Self {
            data,
            layout,
            nfunc,
            text_start: if text_start == 0 { text } else { text_start },
            funcnames,
            functab,
        };
        // The last entry (the end of the last function) must be inside the table.
        t.entry(nfunc)?;
        Ok(t)
    }

    fn entry_size(&self) -> usize {
        match self.layout {
            Layout::Go116 => 16,
            Layout::Go118 => 8,
        }
    }

    /// Entry address of function `i` (`i == nfunc`: the end of the text).
    fn entry(&self, i: usize) -> Result<u64, PclnError> {
        let off = i
            .checked_mul(self.entry_size())
            .and_then(|o| o.checked_add(self.functab));
        let off = off.ok_or(PclnError::Truncated {
            what: "function table",
        })?;
        Ok(match self.layout {
            Layout::Go116 => u64_at(self.data, off, "function table")?,
            Layout::Go118 => self.text_start + u64::from(u32_at(self.data, off, "function table")?),
        })
    }

    /// Name of function `i`.
    fn name(&self, i: usize) -> Option<&'d [u8]> {
        let off = i
            .checked_mul(self.entry_size())?
            .checked_add(self.functab)?;
        let funcoff = match self.layout {
            Layout::Go116 => usize::try_from(u64_at(self.data, off + 8, "").ok()?).ok()?,
            Layout::Go118 => u32_at(self.data, off + 4, "").ok()? as usize,
        };
        // `_func`: the entry (pointer-sized or a 32-bit offset), then `nameOff int32`.
        let name_field =
            self.functab.checked_add(funcoff)? + if self.layout == Layout::Go116 { 8 } else { 4 };
        let name_off = usize::try_from(u32_at(self.data, name_field, "").ok()? as i32).ok()?;
        let start = self.funcnames.checked_add(name_off)?;
        let rest = self.data.get(start..)?;
        let len = memchr::memchr(0, rest)?;
        Some(&rest[..len])
    }

    /// Finds functions by exact name, in one pass over the table.
    pub(super) fn find<const N: usize>(&self, names: [&str; N]) -> [Option<Func>; N] {
        let mut out = [None; N];
        for i in 0..self.nfunc {
            let Some(name) = self.name(i) else { continue };
            let Some(k) = names.iter().position(|n| n.as_bytes() == name) else {
                continue;
            };
            if out[k].is_some() {
                continue;
            }
            if let (Ok(entry), Ok(end)) = (self.entry(i), self.entry(i + 1))
                && end > entry
            {
                out[k] = Some(Func { entry, end });
            }
        }
        out
    }
}
