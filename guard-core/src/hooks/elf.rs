//! Addresses in an ELF file: virtual address ↔ file offset, and the file's identity.

use object::{Object as _, ObjectSection as _, ObjectSegment as _};

/// Virtual address → offset in the file, through the loadable segment that holds it.
pub(super) fn file_offset(elf: &object::File<'_>, addr: u64) -> Option<u64> {
    elf.segments().find_map(|seg| {
        let (start, size) = (seg.address(), seg.size());
        let (file_start, file_size) = seg.file_range();
        (addr >= start && addr < start + size && addr - start < file_size)
            .then(|| addr - start + file_start)
    })
}

/// `len` bytes of the file at virtual address `addr`, if they are all in the file.
pub(super) fn bytes_at<'d>(
    elf: &object::File<'_>,
    data: &'d [u8],
    addr: u64,
    len: u64,
) -> Option<&'d [u8]> {
    let start = usize::try_from(file_offset(elf, addr)?).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    data.get(start..end)
}

/// The GNU build-id note, if the file has one.
pub(super) fn build_id(elf: &object::File<'_>) -> Option<Vec<u8>> {
    elf.build_id().ok().flatten().map(<[u8]>::to_vec)
}

/// The bytes of a named section, if present and in the file.
pub(super) fn section<'d>(elf: &object::File<'d>, name: &str) -> Option<(u64, &'d [u8])> {
    let s = elf.section_by_name(name)?;
    Some((s.address(), s.data().ok()?))
}

/// Offset in the file → virtual address, through the loadable segment that holds it.
pub(super) fn vaddr_of(elf: &object::File<'_>, off: u64) -> Option<u64> {
    elf.segments().find_map(|seg| {
        let (file_start, file_size) = seg.file_range();
        (off >= file_start && off < file_start + file_size)
            .then(|| seg.address() + (off - file_start))
    })
}
