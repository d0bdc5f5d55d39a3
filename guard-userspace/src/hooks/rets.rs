//! RET instructions of a function, by linear disassembly (Go puts no data inside its text on
//! amd64, so a linear sweep from the entry decodes every instruction).

use iced_x86::{Decoder, DecoderOptions, Mnemonic};

/// Addresses of the near RET instructions in `code`, which starts at address `ip`.
pub fn find(code: &[u8], ip: u64) -> Vec<u64> {
    let mut dec = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut out = Vec::new();
    while dec.can_decode() {
        let insn = dec.decode();
        if insn.mnemonic() == Mnemonic::Ret {
            out.push(insn.ip());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_ret_and_not_ret_bytes_inside_other_instructions() {
        // mov eax, 0xc3c3c3c3 ; ret ; add rsp, 8 ; ret 0 (c2 00 00) ; int3
        let code = [
            0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0x48, 0x83, 0xc4, 0x08, 0xc2, 0x00, 0x00, 0xcc,
        ];
        assert_eq!(find(&code, 0x1000), [0x1005, 0x100a]);
    }
}
