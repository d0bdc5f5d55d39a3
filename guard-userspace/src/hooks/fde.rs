//! Function bounds from `.eh_frame`, which stripped Rust and C binaries keep for unwinding: the
//! frame description entry (FDE) that covers an address gives the function's first and last
//! byte. Looked up through `.eh_frame_hdr`'s sorted table when the file has one (a binary search
//! among 300k FDEs for Codex), else by a walk over `.eh_frame`.
//!
//! Named for what it reads, so that a later merge can unify it with other `.eh_frame` helpers
//! (the `openssl-static` branch has `frames.rs`).

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EndianSlice, LittleEndian, ParsedEhFrameHdr,
    RegisterRule, UnwindContext, UnwindSection as _, X86_64,
};

use super::elf;

type R<'d> = EndianSlice<'d, LittleEndian>;

/// One function's code, as its FDE describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    pub start: u64,
    pub end: u64,
    /// At `start` the canonical frame address is RSP + 8 and the return address is at CFA − 8:
    /// only the caller's return address is on the stack, as at a real entry. A compiler's split-off
    /// cold part (`foo.cold`) starts mid-frame and fails this.
    pub is_entry: bool,
}

pub struct Fdes<'d> {
    eh_frame: EhFrame<R<'d>>,
    hdr: Option<ParsedEhFrameHdr<R<'d>>>,
    bases: BaseAddresses,
}

impl<'d> Fdes<'d> {
    /// The file's `.eh_frame`, if it has one (x86-64 little-endian only).
    pub fn of(file: &object::File<'d>) -> Option<Self> {
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
    pub fn containing(&self, addr: u64) -> Option<Function> {
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
        let is_entry = matches!(
            row.cfa(),
            CfaRule::RegisterAndOffset { register, offset: 8 } if *register == X86_64::RSP
        ) && matches!(row.register(X86_64::RA), Some(RegisterRule::Offset(-8)));
        Some(Function {
            start,
            end: start.checked_add(fde.len())?,
            is_entry,
        })
    }

    /// Without `.eh_frame_hdr`: every FDE in order until one covers `addr`.
    fn walk(&self, addr: u64) -> Option<gimli::FrameDescriptionEntry<R<'d>>> {
        let mut entries = self.eh_frame.entries(&self.bases);
        while let Ok(Some(entry)) = entries.next() {
            if let gimli::CieOrFde::Fde(partial) = entry
                && let Ok(fde) = partial.parse(EhFrame::cie_from_offset)
                && fde.contains(addr)
            {
                return Some(fde);
            }
        }
        None
    }
}
