//! RET instructions of a function, by linear disassembly (Go puts no data inside its text on
//! amd64, so a linear sweep from the entry decodes every instruction), and the end of a Go
//! function's stack check.

use iced_x86::{Decoder, DecoderOptions, Mnemonic};

/// Where a Go function's body starts: after its stack-bound check (`cmp rsp|r12, [r14+16]` and
/// a conditional jump forward to the `runtime.morestack` call). When the stack must grow, that
/// call re-enters the function *from its entry*, so a probe on the entry fires twice for one
/// call and a write would be captured twice. The argument registers are intact at the jump's
/// fall-through. A function without the check (`NOSPLIT`) starts at its entry.
pub(super) fn after_stack_check(code: &[u8], ip: u64) -> u64 {
    let mut dec = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let end = ip + code.len() as u64;
    // The check is the first two or three instructions (`lea r12, [rsp-N]` for large frames).
    for _ in 0..4 {
        if !dec.can_decode() {
            break;
        }
        let insn = dec.decode();
        use Mnemonic::*;
        if matches!(insn.mnemonic(), Jbe | Jb | Ja | Jae | Je | Jne | Jl | Jle | Jg | Jge) {
            let target = insn.near_branch_target();
            return if target > insn.next_ip() && target < end { insn.next_ip() } else { ip };
        }
        if matches!(insn.mnemonic(), Jmp | Call | Ret | Int3) {
            break;
        }
    }
    ip
}

/// Addresses of the near RET instructions in `code`, which starts at address `ip`.
pub(super) fn find(code: &[u8], ip: u64) -> Vec<u64> {
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

    #[test]
    fn the_body_starts_after_the_stack_check() {
        // lea r12,[rsp-0x40]; cmp r12,[r14+0x10]; jbe +0x10; push rbp; ... ; (morestack block)
        let mut code = vec![0x4c, 0x8d, 0x64, 0x24, 0xc0, 0x4d, 0x3b, 0x66, 0x10, 0x76, 0x10, 0x55];
        code.resize(0x30, 0x90);
        assert_eq!(after_stack_check(&code, 0x1000), 0x100b);
        // No check (NOSPLIT): the entry. A backward branch is not a stack check.
        assert_eq!(after_stack_check(&[0x55, 0x48, 0x89, 0xe5, 0xc3], 0x1000), 0x1000);
        assert_eq!(after_stack_check(&[0x4d, 0x3b, 0x66, 0x10, 0x76, 0xfa, 0x55], 0x1000), 0x1000);
    }
}
