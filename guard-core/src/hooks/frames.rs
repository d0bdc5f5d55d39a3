//! Function bounds of a stripped binary from its unwind table: every function the compiler emitted
//! with unwind information has a Frame Description Entry in `.eh_frame` that gives its first
//! address and its length. Rust keeps `.eh_frame` in stripped binaries (panics unwind through
//! it), and C compilers emit it by default on x86-64 (`-fasynchronous-unwind-tables`).
//!
//! Two ways in, on the same rules:
//! - [`Functions`]: every FDE read once into a sorted list, for a finder that walks all functions
//!   or looks up many addresses (OpenSSL);
//! - [`Fdes`]: one lookup at a time through `.eh_frame_hdr`'s sorted table (a binary search among
//!   300k FDEs for Codex), or a walk over `.eh_frame` when the file has no such table (aws-lc).

use std::collections::HashMap;

use gimli::{
    BaseAddresses, CfaRule, CieOrFde, EhFrame, EhFrameHdr, EndianSlice, LittleEndian,
    ParsedEhFrameHdr, RegisterRule, UnwindContext, UnwindSection as _, UnwindTableRow, X86_64,
};

use super::elf;

type R<'d> = EndianSlice<'d, LittleEndian>;

/// One function's code, as its FDE describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Function {
    pub start: u64,
    pub end: u64,
    /// Whether `start` has the unwind rule of a function entry ([`is_entry_row`]).
    pub is_entry: bool,
}

/// The unwind rule of a function entry on x86-64: the canonical frame address is RSP + 8, just
/// above the return address the call pushed, and the return address is at CFA − 8. A piece the
/// compiler split out of a function (`foo.cold`) starts inside its parent's frame and has another
/// rule (CFA = RSP + 16 or more).
fn is_entry_row(row: &UnwindTableRow<usize>) -> bool {
    matches!(
        row.cfa(),
        CfaRule::RegisterAndOffset { register, offset: 8 } if *register == X86_64::RSP
    ) && matches!(row.register(X86_64::RA), Some(RegisterRule::Offset(-8)))
}

/// The file's `.eh_frame` and the bases its pointers are relative to (x86-64 little-endian).
fn eh_frame<'d>(file: &object::File<'d>) -> Option<(EhFrame<R<'d>>, BaseAddresses)> {
    let (eh_addr, eh) = elf::section(file, ".eh_frame")?;
    let mut bases = BaseAddresses::default().set_eh_frame(eh_addr);
    if let Some((text, _)) = elf::section(file, ".text") {
        bases = bases.set_text(text);
    }
    if let Some((got, _)) = elf::section(file, ".got") {
        bases = bases.set_got(got);
    }
    let mut eh_frame = EhFrame::new(eh, LittleEndian);
    eh_frame.set_address_size(8);
    Some((eh_frame, bases))
}

/// Functions as sorted, non-overlapping `[start, end)` ranges, and the starts that are entries.
pub(super) struct Functions {
    ranges: Vec<(u64, u64)>,
    /// Starts whose unwind rule is that of a function entry ([`is_entry_row`]).
    entries: Vec<u64>,
}

impl Functions {
    /// The functions of `.eh_frame`, or None if the file has none.
    pub(super) fn of(file: &object::File<'_>) -> Option<Self> {
        let (eh, bases) = eh_frame(file)?;
        let mut cies: HashMap<gimli::EhFrameOffset, gimli::CommonInformationEntry<R<'_>>> =
            HashMap::new();
        let mut ranges = Vec::new();
        let mut entries = Vec::new();
        let mut ctx = UnwindContext::new();
        let mut cfi = eh.entries(&bases);
        // A malformed entry ends the walk: what was read so far is still right.
        while let Ok(Some(entry)) = cfi.next() {
            let CieOrFde::Fde(partial) = entry else {
                continue;
            };
            let fde = partial.parse(|section, bases, offset| {
                if let Some(cie) = cies.get(&offset) {
                    return Ok(cie.clone());
                }
                let cie = section.cie_from_offset(bases, offset)?;
                cies.insert(offset, cie.clone());
                Ok(cie)
            });
            let Ok(fde) = fde else { continue };
            let start = fde.initial_address();
            if fde.len() > 0
                && let Some(end) = start.checked_add(fde.len())
            {
                ranges.push((start, end));
                let entry = fde
                    .rows(&eh, &bases, &mut ctx)
                    .is_ok_and(|mut rows| rows.next_row().ok().flatten().is_some_and(is_entry_row));
                if entry {
                    entries.push(start);
                }
            }
        }
        if ranges.is_empty() {
            return None;
        }
        ranges.sort_unstable();
        ranges.dedup();
        // Overlaps mean a table we do not understand: keep only ranges clear of their neighbours.
        let clean: Vec<(u64, u64)> = ranges
            .iter()
            .enumerate()
            .filter(|&(i, r)| {
                let before = i.checked_sub(1).and_then(|j| ranges.get(j));
                let after = ranges.get(i + 1);
                before.is_none_or(|b| b.1 <= r.0) && after.is_none_or(|a| r.1 <= a.0)
            })
            .map(|(_, r)| *r)
            .collect();
        entries.sort_unstable();
        Some(Self {
            ranges: clean,
            entries,
        })
    }

    /// Whether a function starts at `addr` with the unwind rule of an entry (x86-64).
    pub(super) fn is_entry(&self, addr: u64) -> bool {
        self.entries.binary_search(&addr).is_ok()
    }

    /// The function whose code holds `addr`.
    pub(super) fn containing(&self, addr: u64) -> Option<(u64, u64)> {
        let i = self
            .ranges
            .partition_point(|r| r.0 <= addr)
            .checked_sub(1)?;
        let r = self.ranges[i];
        (addr < r.1).then_some(r)
    }

    /// Every function, in address order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().copied()
    }

    #[cfg(test)]
    pub(super) fn from_ranges(ranges: Vec<(u64, u64)>) -> Self {
        let entries = ranges.iter().map(|r| r.0).collect();
        Self { ranges, entries }
    }
}

/// `.eh_frame` looked up one address at a time, without reading every FDE first.
pub(super) struct Fdes<'d> {
    eh_frame: EhFrame<R<'d>>,
    hdr: Option<ParsedEhFrameHdr<R<'d>>>,
    bases: BaseAddresses,
}

impl<'d> Fdes<'d> {
    /// The file's `.eh_frame`, with `.eh_frame_hdr`'s table if it has one.
    pub(super) fn of(file: &object::File<'d>) -> Option<Self> {
        let (eh_frame, mut bases) = eh_frame(file)?;
        let hdr = elf::section(file, ".eh_frame_hdr").and_then(|(addr, bytes)| {
            bases = bases.clone().set_eh_frame_hdr(addr);
            EhFrameHdr::new(bytes, LittleEndian).parse(&bases, 8).ok()
        });
        Some(Self {
            eh_frame,
            hdr,
            bases,
        })
    }

    /// The function whose FDE covers `addr`.
    pub(super) fn containing(&self, addr: u64) -> Option<Function> {
        let fde = match self.hdr.as_ref().and_then(|h| h.table()) {
            Some(table) => table
                .fde_for_address(&self.eh_frame, &self.bases, addr, EhFrame::cie_from_offset)
                .ok()?,
            None => self.walk(addr)?,
        };
        let start = fde.initial_address();
        let mut ctx = UnwindContext::new();
        let row = fde
            .unwind_info_for_address(&self.eh_frame, &self.bases, &mut ctx, start)
            .ok()?;
        Some(Function {
            start,
            end: start.checked_add(fde.len())?,
            is_entry: is_entry_row(row),
        })
    }

    /// Without `.eh_frame_hdr`: every FDE in order until one covers `addr`.
    fn walk(&self, addr: u64) -> Option<gimli::FrameDescriptionEntry<R<'d>>> {
        let mut entries = self.eh_frame.entries(&self.bases);
        while let Ok(Some(entry)) = entries.next() {
            if let CieOrFde::Fde(partial) = entry
                && let Ok(fde) = partial.parse(EhFrame::cie_from_offset)
                && fde.contains(addr)
            {
                return Some(fde);
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
#[allow(clippy::disallowed_methods, reason = "the test reads its own executable")]
mod tests {
    use super::*;

    #[test]
    fn an_address_belongs_to_the_range_that_holds_it() {
        let f = Functions::from_ranges(vec![(0x100, 0x120), (0x130, 0x200)]);
        assert_eq!(f.containing(0x100), Some((0x100, 0x120)));
        assert_eq!(f.containing(0x11f), Some((0x100, 0x120)));
        assert_eq!(f.containing(0x125), None, "padding between functions");
        assert_eq!(f.containing(0x1ff), Some((0x130, 0x200)));
        assert_eq!(f.containing(0x200), None);
        assert_eq!(f.containing(0x10), None);
    }

    #[test]
    fn the_hdr_lookup_agrees_with_the_full_walk() {
        // This test binary: `.eh_frame_hdr`'s table (Fdes) against every FDE read (Functions).
        let data = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let all = Functions::of(&file).unwrap();
        let fdes = Fdes::of(&file).unwrap();
        assert!(fdes.hdr.is_some(), "linked with --eh-frame-hdr");
        let (mut checked, mut entries) = (0, 0);
        for (start, end) in all.iter().step_by(37) {
            let want = Function {
                start,
                end,
                is_entry: all.is_entry(start),
            };
            for addr in [start, end - 1] {
                assert_eq!(fdes.containing(addr), Some(want), "{addr:#x}");
            }
            checked += 1;
            entries += usize::from(want.is_entry);
        }
        assert!(
            checked > 100 && entries > checked / 2,
            "{checked} {entries}"
        );
    }
}
