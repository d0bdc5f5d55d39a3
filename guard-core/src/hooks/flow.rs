//! What a small function hands on: for a function whose whole body makes a single direct call or
//! tail jump, which of its own arguments (SysV registers) are in the callee's argument registers
//! at that branch. This is how a thin public wrapper (`SSL_read_ex`: "call the internal function
//! with my four arguments unchanged") is told from other callers of the same function.
//!
//! Deliberately small: a fixed set of instructions whose effect on the argument registers is
//! known; anything else, an indirect branch, a second call, a return or a joining jump before
//! the branch gives no answer.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// Where the value of an argument register comes from, at the branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Src {
    /// The function's own argument `i`, unchanged.
    Arg(u8),
    /// The low 32 bits of argument `i`, sign-extended (an `int` widened to `size_t`).
    Sext32(u8),
    Const(u64),
    /// Anything else (a stack address, a loaded value, a result).
    Other,
}

/// The single branch out of a function and the arguments it passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Forward {
    pub target: u64,
    /// A `jmp` rather than a `call`.
    pub tail: bool,
    pub args: [Src; 6],
}

/// Argument position and operand width (bytes) of a register of the SysV integer arguments.
fn arg_reg(r: Register) -> Option<(usize, u8)> {
    use Register as R;
    Some(match r {
        R::RDI => (0, 8),
        R::RSI => (1, 8),
        R::RDX => (2, 8),
        R::RCX => (3, 8),
        R::R8 => (4, 8),
        R::R9 => (5, 8),
        R::EDI => (0, 4),
        R::ESI => (1, 4),
        R::EDX => (2, 4),
        R::ECX => (3, 4),
        R::R8D => (4, 4),
        R::R9D => (5, 4),
        R::DI | R::DIL => (0, 2),
        R::SI | R::SIL => (1, 2),
        R::DX | R::DL | R::DH => (2, 2),
        R::CX | R::CL | R::CH => (3, 2),
        R::R8W | R::R8L => (4, 2),
        R::R9W | R::R9L => (5, 2),
        _ => return None,
    })
}

/// The effect of one instruction on the argument registers; None when it is not one we model.
fn step(insn: &Instruction, regs: &mut [Src; 6]) -> Option<()> {
    let dst = (insn.op_count() > 0 && insn.op0_kind() == OpKind::Register)
        .then(|| arg_reg(insn.op0_register()))
        .flatten();
    let clobber = |regs: &mut [Src; 6]| {
        if let Some((i, _)) = dst {
            regs[i] = Src::Other;
        }
    };
    match insn.mnemonic() {
        Mnemonic::Nop | Mnemonic::Endbr64 | Mnemonic::Push | Mnemonic::Test | Mnemonic::Cmp => {}
        Mnemonic::Pop
        | Mnemonic::Lea
        | Mnemonic::Add
        | Mnemonic::Sub
        | Mnemonic::And
        | Mnemonic::Or
        | Mnemonic::Movzx
        | Mnemonic::Movsx
        | Mnemonic::Cmove
        | Mnemonic::Cmovne
        | Mnemonic::Cmovs
        | Mnemonic::Cmovns
        | Mnemonic::Cmovl
        | Mnemonic::Cmovle
        | Mnemonic::Cmovg
        | Mnemonic::Cmovge
        | Mnemonic::Sete
        | Mnemonic::Setne => clobber(regs),
        Mnemonic::Xor => match dst {
            Some((i, w)) if w >= 4 && insn.op1_kind() == OpKind::Register => {
                regs[i] = if insn.op1_register() == insn.op0_register() {
                    Src::Const(0)
                } else {
                    Src::Other
                };
            }
            _ => clobber(regs),
        },
        Mnemonic::Mov => {
            let Some((i, w)) = dst else { return Some(()) };
            regs[i] = match insn.op1_kind() {
                OpKind::Register => match arg_reg(insn.op1_register()) {
                    Some((j, 8)) if w == 8 => regs[j],
                    Some((j, 4)) if w == 4 => match regs[j] {
                        Src::Const(c) => Src::Const(c & 0xffff_ffff),
                        _ => Src::Other,
                    },
                    _ => Src::Other,
                },
                OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64 if w >= 4 => {
                    Src::Const(insn.immediate(1))
                }
                _ => Src::Other,
            };
        }
        Mnemonic::Movsxd => {
            let Some((i, _)) = dst else { return Some(()) };
            regs[i] = match arg_reg(insn.op1_register()) {
                Some((j, 4)) => match regs[j] {
                    Src::Arg(a) => Src::Sext32(a),
                    _ => Src::Other,
                },
                _ => Src::Other,
            };
        }
        _ => return None,
    }
    Some(())
}

/// The single branch out of the function `[start, start + bytes.len())` and what it passes.
pub(super) fn forward(bytes: &[u8], start: u64) -> Option<Forward> {
    let end = start + bytes.len() as u64;
    let inside = |t: u64| (start..end).contains(&t);
    let mut regs: [Src; 6] = std::array::from_fn(|i| Src::Arg(i as u8));
    let mut out: Option<Forward> = None;
    // Targets of conditional jumps taken before the branch: none may land at or before it, or the
    // registers at the branch would depend on the path.
    let mut skips: Vec<u64> = Vec::new();
    let mut dec = Decoder::with_ip(64, bytes, start, DecoderOptions::NONE);
    while dec.can_decode() {
        let insn = dec.decode();
        if insn.is_invalid() {
            return None;
        }
        let m = insn.mnemonic();
        let direct = insn.op_count() == 1 && insn.op0_kind() == OpKind::NearBranch64;
        if matches!(m, Mnemonic::Call | Mnemonic::Jmp) && !direct {
            return None;
        }
        if direct
            && matches!(m, Mnemonic::Call | Mnemonic::Jmp)
            && !inside(insn.near_branch_target())
        {
            if out.is_some() || skips.iter().any(|&t| t <= insn.ip()) {
                return None;
            }
            out = Some(Forward {
                target: insn.near_branch_target(),
                tail: m == Mnemonic::Jmp,
                args: regs,
            });
            continue;
        }
        if out.is_some() {
            // Past the branch: only a second branch out (above) or an indirect one matters.
            continue;
        }
        match m {
            // A jump inside the function before the branch: the linear reading would be wrong.
            Mnemonic::Jmp | Mnemonic::Call | Mnemonic::Ret | Mnemonic::Int3 => return None,
            _ if direct => {
                let t = insn.near_branch_target();
                if !inside(t) || t <= insn.ip() {
                    return None;
                }
                skips.push(t);
            }
            _ => step(&insn, &mut regs)?,
        }
    }
    out
}

/// Direct call and jump targets outside the function `[start, start + bytes.len())`, by a
/// linear sweep.
pub(super) fn branch_targets(bytes: &[u8], start: u64) -> Vec<u64> {
    let end = start + bytes.len() as u64;
    let mut dec = Decoder::with_ip(64, bytes, start, DecoderOptions::NONE);
    let mut out = Vec::new();
    while dec.can_decode() {
        let insn = dec.decode();
        if insn.op_count() == 1 && insn.op0_kind() == OpKind::NearBranch64 {
            let t = insn.near_branch_target();
            if !(start..end).contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    const A: fn(u8) -> Src = Src::Arg;

    #[test]
    fn a_thin_wrapper_passes_its_arguments_through() {
        // SSL_read_ex: sub rsp,8; call -0x229; xor edx,edx; test eax,eax; cmovs eax,edx;
        // add rsp,8; ret
        let code = [
            0x48, 0x83, 0xec, 0x08, 0xe8, 0xd7, 0xfd, 0xff, 0xff, 0x31, 0xd2, 0x85, 0xc0, 0x0f,
            0x48, 0xc2, 0x48, 0x83, 0xc4, 0x08, 0xc3,
        ];
        let f = forward(&code, 0x1d8930).unwrap();
        assert_eq!((f.target, f.tail), (0x1d8710, false));
        assert_eq!(f.args[..4], [A(0), A(1), A(2), A(3)]);
    }

    #[test]
    fn moved_and_constant_arguments_are_followed_into_a_tail_jump() {
        // SSL_write_ex of 3.3+: mov r8,rcx; xor ecx,ecx; jmp SSL_write_ex2
        let code = [0x49, 0x89, 0xc8, 0x31, 0xc9, 0xe9, 0xd6, 0xff, 0xff, 0xff];
        let f = forward(&code, 0x1d8bd0).unwrap();
        assert_eq!((f.target, f.tail), (0x1d8bb0, true));
        assert_eq!(f.args[..5], [A(0), A(1), A(2), Src::Const(0), A(3)]);
    }

    #[test]
    fn a_widened_int_and_a_stack_address_are_not_passed_through() {
        // SSL_read: sub rsp,0x18; test edx,edx; js +0x1a (past the call); lea rcx,[rsp+8];
        // movsxd rdx,edx; call; test eax,eax; jle +4; mov eax,[rsp+8]; add rsp,0x18; ret
        let code = [
            0x48, 0x83, 0xec, 0x18, 0x85, 0xd2, 0x78, 0x1a, 0x48, 0x8d, 0x4c, 0x24, 0x08, 0x48,
            0x63, 0xd2, 0xe8, 0x2b, 0xfe, 0xff, 0xff, 0x85, 0xc0, 0x7e, 0x04, 0x8b, 0x44, 0x24,
            0x08, 0x48, 0x83, 0xc4, 0x18, 0xc3,
        ];
        // The function goes on past these bytes (its error path, where `js` lands).
        let mut body = code.to_vec();
        body.resize(0x30, 0xcc);
        let f = forward(&body, 0x1d88d0).unwrap();
        assert_eq!(f.args[..4], [A(0), A(1), Src::Sext32(2), Src::Other]);
    }

    #[test]
    fn two_calls_a_return_first_or_an_indirect_call_give_no_answer() {
        // call; call; ret
        let two = [0xe8, 0, 1, 0, 0, 0xe8, 0, 1, 0, 0, 0xc3];
        assert_eq!(forward(&two, 0x1000), None);
        // test rdi,rdi; ret; jmp (a return before the branch)
        let early = [0x48, 0x85, 0xff, 0xc3, 0xe9, 0, 1, 0, 0];
        assert_eq!(forward(&early, 0x1000), None);
        // call [rax]
        assert_eq!(forward(&[0xff, 0x10, 0xc3], 0x1000), None);
        // an instruction we do not model before the branch (cpuid), then jmp
        assert_eq!(forward(&[0x0f, 0xa2, 0xe9, 0, 1, 0, 0], 0x1000), None);
    }

    #[test]
    fn a_conditional_jump_that_joins_before_the_branch_gives_no_answer() {
        // test rcx,rcx; je +3 (to the call); mov rcx,rdx; call
        let code = [
            0x48, 0x85, 0xc9, 0x74, 0x03, 0x48, 0x89, 0xd1, 0xe8, 0, 1, 0, 0, 0xc3,
        ];
        assert_eq!(forward(&code, 0x1000), None);
    }
}
