//! Function bounds of a stripped binary from its unwind table: every function the compiler emitted
//! with unwind information has a Frame Description Entry in `.eh_frame` that gives its first
//! address and its length. Rust keeps `.eh_frame` in stripped binaries (panics unwind through
//! it), and C compilers emit it by default on x86-64 (`-fasynchronous-unwind-tables`).

use std::collections::HashMap;

use gimli::{BaseAddresses, CieOrFde, EhFrame, LittleEndian, UnwindSection as _};
use object::{Object as _, ObjectSection as _};

/// Functions as sorted, non-overlapping `[start, end)` ranges, and the starts that are entries.
pub struct Functions {
    ranges: Vec<(u64, u64)>,
    /// Starts whose unwind rule is that of a function entry: the canonical frame address is
    /// RSP + 8, just above the return address the call pushed. A piece the compiler split out of
    /// a function (`foo.cold`) starts inside its parent's frame and has another rule.
    entries: Vec<u64>,
}

impl Functions {
    /// The functions of `.eh_frame`, or None if the file has none.
    pub fn of(file: &object::File<'_>) -> Option<Self> {
        let sec = file.section_by_name(".eh_frame")?;
        let data = sec.data().ok()?;
        let eh = EhFrame::new(data, LittleEndian);
        let mut bases = BaseAddresses::default().set_eh_frame(sec.address());
        if let Some(t) = file.section_by_name(".text") {
            bases = bases.set_text(t.address());
        }
        if let Some(g) = file.section_by_name(".got") {
            bases = bases.set_got(g.address());
        }
        type Cie<'d> = gimli::CommonInformationEntry<gimli::EndianSlice<'d, LittleEndian>>;
        let mut cies: HashMap<gimli::EhFrameOffset, Cie<'_>> = HashMap::new();
        let mut ranges = Vec::new();
        let mut entries = Vec::new();
        let mut ctx = gimli::UnwindContext::new();
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
                    .ok()
                    .and_then(|mut rows| rows.next_row().ok().flatten().cloned())
                    .is_some_and(|row| {
                        *row.cfa()
                            == gimli::CfaRule::RegisterAndOffset {
                                register: gimli::X86_64::RSP,
                                offset: 8,
                            }
                    });
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
    pub fn is_entry(&self, addr: u64) -> bool {
        self.entries.binary_search(&addr).is_ok()
    }

    /// The function whose code holds `addr`.
    pub fn containing(&self, addr: u64) -> Option<(u64, u64)> {
        let i = self
            .ranges
            .partition_point(|r| r.0 <= addr)
            .checked_sub(1)?;
        let r = self.ranges[i];
        (addr < r.1).then_some(r)
    }

    /// Every function, in address order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().copied()
    }

    #[cfg(test)]
    pub fn from_ranges(ranges: Vec<(u64, u64)>) -> Self {
        let entries = ranges.iter().map(|r| r.0).collect();
        Self { ranges, entries }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
}
