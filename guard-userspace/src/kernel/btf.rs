//! Struct member offsets from the kernel's BTF (/sys/kernel/btf/vmlinux).
//!
//! Hand-written on purpose: aya-obj parses BTF but keeps member lookup private, and btf-rs is
//! LGPL. We need one thing — the byte offset of a few `task_struct` fields — which is a linear
//! walk of the type section (about 20 ms for vmlinux here).

use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BtfError {
    #[error("BTF is truncated or malformed at byte {at}")]
    Malformed { at: usize },
    #[error("BTF magic {magic:#x} is not 0xeb9f (big-endian BTF is not supported)")]
    Magic { magic: u16 },
    #[error("unknown BTF kind {kind} at type {id}")]
    Kind { kind: u32, id: u32 },
    #[error("struct {name} not found in BTF")]
    NoStruct { name: String },
    #[error("member {member} of struct {name} not found in BTF")]
    NoMember { name: String, member: String },
}

const STRUCT: u32 = 4;
const UNION: u32 = 5;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const TYPE_TAG: u32 = 18;

struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

struct Type {
    name: u32,
    kind: u32,
    /// Referenced type for modifiers and typedefs.
    ty: u32,
    members: Vec<Member>,
}

pub(crate) struct Btf {
    strings: Vec<u8>,
    types: Vec<Type>,
    by_name: HashMap<Vec<u8>, Vec<u32>>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, BtfError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(BtfError::Malformed { at })
}

impl Btf {
    pub(crate) fn parse(b: &[u8]) -> Result<Self, BtfError> {
        let magic = b.get(0..2).map(|m| u16::from_le_bytes([m[0], m[1]])).ok_or(BtfError::Malformed { at: 0 })?;
        if magic != 0xeb9f {
            return Err(BtfError::Magic { magic });
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
        let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
        let types_at = hdr_len + type_off;
        let strs_at = hdr_len + str_off;
        let strings = b.get(strs_at..strs_at + str_len).ok_or(BtfError::Malformed { at: strs_at })?.to_vec();
        let end = types_at + type_len;
        if end > b.len() {
            return Err(BtfError::Malformed { at: end });
        }
        // Type id 0 is "void".
        let mut types = vec![Type { name: 0, kind: 0, ty: 0, members: vec![] }];
        let mut at = types_at;
        while at < end {
            let id = types.len() as u32;
            let (name, info, size_or_type) = (u32_at(b, at)?, u32_at(b, at + 4)?, u32_at(b, at + 8)?);
            at += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let mut members = vec![];
            at += match kind {
                1 | 14 | 17 => 4,                 // int, var, decl_tag
                2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0, // ptr, fwd, modifiers, func, float, type_tag
                3 => 12,                          // array
                STRUCT | UNION => {
                    for m in 0..vlen {
                        let m_at = at + m * 12;
                        let off = u32_at(b, m_at + 8)?;
                        members.push(Member {
                            name: u32_at(b, m_at)?,
                            ty: u32_at(b, m_at + 4)?,
                            bit_offset: if kind_flag { off & 0x00ff_ffff } else { off },
                        });
                    }
                    vlen * 12
                }
                6 | 13 => vlen * 8,  // enum, func_proto
                15 | 19 => vlen * 12, // datasec, enum64
                _ => return Err(BtfError::Kind { kind, id }),
            };
            types.push(Type { name, kind, ty: size_or_type, members });
        }
        let mut btf = Self { strings, types, by_name: HashMap::new() };
        for (id, t) in btf.types.iter().enumerate() {
            if t.kind == STRUCT && t.name != 0 {
                let name = btf.str(t.name).to_vec();
                btf.by_name.entry(name).or_default().push(id as u32);
            }
        }
        Ok(btf)
    }

    fn str(&self, off: u32) -> &[u8] {
        let s = self.strings.get(off as usize..).unwrap_or_default();
        &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.types.get(id as usize)?;
            match t.kind {
                TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => id = t.ty,
                _ => return Some(t),
            }
        }
        None
    }

    /// The type id of the kernel function `name` (BTF kind FUNC), for programs that attach to one.
    pub(crate) fn func_id(&self, name: &str) -> Option<u32> {
        const FUNC: u32 = 12;
        self.types.iter().position(|t| t.kind == FUNC && self.str(t.name) == name.as_bytes()).and_then(|i| u32::try_from(i).ok())
    }

    /// Byte offset of `member` in `struct name`, looking inside anonymous structs and unions.
    pub(crate) fn member_offset(&self, name: &str, member: &str) -> Result<u32, BtfError> {
        let ids = self.by_name.get(name.as_bytes()).ok_or_else(|| BtfError::NoStruct { name: name.into() })?;
        ids.iter()
            .filter_map(|&id| self.find(&self.types[id as usize], member.as_bytes(), 0))
            .next()
            .map(|bits| bits / 8)
            .ok_or_else(|| BtfError::NoMember { name: name.into(), member: member.into() })
    }

    fn find(&self, t: &Type, member: &[u8], base_bits: u32) -> Option<u32> {
        for m in &t.members {
            if m.name != 0 && self.str(m.name) == member {
                return Some(base_bits + m.bit_offset);
            }
            if m.name == 0
                && let Some(inner) = self.resolve(m.ty).filter(|i| i.kind == STRUCT || i.kind == UNION)
                && let Some(found) = self.find(inner, member, base_bits + m.bit_offset)
            {
                return Some(found);
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    /// A BTF blob with `struct s { int a; union { int b; }; }` (b at byte 8).
    fn blob() -> Vec<u8> {
        let strings = b"\0s\0a\0b\0int\0".to_vec();
        let mut types = vec![];
        let mut push = |v: &[u32]| v.iter().for_each(|x| types.extend_from_slice(&x.to_le_bytes()));
        push(&[7, 1 << 24, 4, 32]); // [1] int
        push(&[0, (UNION << 24) | 1, 4]); // [2] anonymous union
        push(&[5, 1, 0]); //     b: int @0
        push(&[1, (STRUCT << 24) | 2, 12]); // [3] struct s
        push(&[3, 1, 0]); //     a: int @0
        push(&[0, 2, 64]); //    (anon): union @64 bits
        let mut b = vec![0x9f, 0xeb, 1, 0];
        for v in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&types);
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn finds_direct_and_anonymous_members() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.member_offset("s", "a"), Ok(0));
        assert_eq!(btf.member_offset("s", "b"), Ok(8));
        assert!(matches!(btf.member_offset("s", "zz"), Err(BtfError::NoMember { .. })));
        assert!(matches!(btf.member_offset("t", "a"), Err(BtfError::NoStruct { .. })));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let b = blob();
        for n in 0..b.len() {
            let _ = Btf::parse(&b[..n]);
        }
    }

    #[test]
    fn reads_this_kernels_task_struct_when_available() {
        let Ok(b) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            eprintln!("SKIP: no /sys/kernel/btf/vmlinux");
            return;
        };
        let btf = Btf::parse(&b).unwrap();
        let pid = btf.member_offset("task_struct", "pid").unwrap();
        let tgid = btf.member_offset("task_struct", "tgid").unwrap();
        assert_eq!(tgid, pid + 4, "pid and tgid are adjacent pid_t fields");
        assert!(btf.member_offset("task_struct", "start_boottime").unwrap() > 0);
    }
}
