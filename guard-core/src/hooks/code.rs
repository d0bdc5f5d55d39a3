//! The executable bytes of an ELF file, and the references into data that its instructions make.

use memchr::{memchr_iter, memmem};
use object::{Object as _, ObjectSegment as _};

/// Executable bytes of the file and the address they load at.
pub(super) struct Code<'d> {
    pub addr: u64,
    pub bytes: &'d [u8],
}

impl<'d> Code<'d> {
    /// The bytes from address `from` to `to` (exclusive), if all in this segment.
    pub(super) fn range(&self, from: u64, to: u64) -> Option<&'d [u8]> {
        let start = usize::try_from(from.checked_sub(self.addr)?).ok()?;
        let end = usize::try_from(to.checked_sub(self.addr)?).ok()?;
        self.bytes.get(start..end)
    }
}

/// The loadable segments that are executable.
pub(super) fn segments<'d>(file: &object::File<'d>, data: &'d [u8]) -> Vec<Code<'d>> {
    file.segments()
        .filter(|s| matches!(s.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & 1 != 0))
        .filter_map(|s| {
            let (off, len) = s.file_range();
            Some(Code {
                addr: s.address(),
                bytes: data.get(
                    usize::try_from(off).ok()?..usize::try_from(off.checked_add(len)?).ok()?,
                )?,
            })
        })
        .collect()
}

/// The bytes from `from` to `to`, in whichever segment holds them.
pub(super) fn range<'d>(code: &[Code<'d>], from: u64, to: u64) -> Option<&'d [u8]> {
    code.iter().find_map(|c| c.range(from, to))
}

/// `next + rel32`: the target of a relative branch or RIP-relative operand.
pub(super) fn rel32(next: u64, d: &[u8]) -> Option<u64> {
    let d: [u8; 4] = d.get(..4)?.try_into().ok()?;
    Some(next.wrapping_add_signed(i64::from(i32::from_le_bytes(d))))
}

/// Instructions that load one of `targets` (sorted) into a register: `lea r64, [rip + d]` (PIE)
/// or `mov r32, imm32` (non-PIE). Returns (instruction address, target).
pub(super) fn address_loads(code: &Code<'_>, targets: &[u64]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let wanted = |t: u64| targets.binary_search(&t).is_ok();
    for at in memchr_iter(0x8d, code.bytes) {
        let (Some(&rex), Some(&modrm)) = (
            at.checked_sub(1).and_then(|i| code.bytes.get(i)),
            code.bytes.get(at + 1),
        ) else {
            continue;
        };
        if !(rex == 0x48 || rex == 0x4c) || modrm & 0xc7 != 0x05 {
            continue;
        }
        let next = code.addr + at as u64 + 6;
        if let Some(t) = code.bytes.get(at + 2..).and_then(|d| rel32(next, d))
            && wanted(t)
        {
            out.push((code.addr + at as u64 - 1, t));
        }
    }
    for &t in targets {
        let Ok(abs) = u32::try_from(t) else { continue };
        for at in memmem::find_iter(code.bytes, &abs.to_le_bytes()) {
            let op = at.checked_sub(1).map(|i| code.bytes[i]);
            if op.is_some_and(|o| (0xb8..=0xbf).contains(&o)) {
                let rex = at >= 2 && code.bytes[at - 2] == 0x41;
                out.push((code.addr + (at - 1 - usize::from(rex)) as u64, t));
            }
        }
    }
    out.sort_unstable();
    out
}

/// Addresses in the file's loaded, non-executable data where the NUL-terminated string `s` starts
/// (also where it ends a longer string: linkers merge a string into the tail of another).
pub(super) fn string_addrs(file: &object::File<'_>, data: &[u8], s: &str) -> Vec<u64> {
    let mut needle = s.as_bytes().to_vec();
    needle.push(0);
    let finder = memmem::Finder::new(&needle);
    let mut out = Vec::new();
    for seg in file.segments() {
        if matches!(seg.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & 1 != 0) {
            continue;
        }
        let (off, len) = seg.file_range();
        let Some(bytes) = usize::try_from(off)
            .ok()
            .zip(off.checked_add(len).and_then(|e| usize::try_from(e).ok()))
            .and_then(|(a, b)| data.get(a..b))
        else {
            continue;
        };
        out.extend(finder.find_iter(bytes).map(|at| seg.address() + at as u64));
    }
    out.sort_unstable();
    out.dedup();
    out
}
