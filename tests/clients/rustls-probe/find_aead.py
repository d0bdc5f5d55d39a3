#!/usr/bin/env python3
"""Prototype of the structural finder for rustls + aws-lc binaries (see docs/dev-notes/rustls.md).

    find_aead.py BINARY [UNSTRIPPED]

Finds aws-lc's EVP_AEAD_CTX_seal, EVP_AEAD_CTX_seal_scatter and EVP_AEAD_CTX_open in a stripped
binary from what the code records, with no per-version table:

1. the `__FILE__` string of aws-lc's generic AEAD layer, ".../crypto/fipsmodule/cipher/aead.c";
2. function bounds from `.eh_frame` (kept by stripped Rust and C binaries);
3. in each function that loads that string, every call made with EDI = ERR_LIB_CIPHER (30) and
   RCX = the string: `OPENSSL_PUT_ERROR(CIPHER, reason)`, i.e. ERR_put_error(30, 0, reason,
   __FILE__, __LINE__). The decoder walks the whole function and remembers the last immediate
   put in each argument register, so it does not care in which order the compiler scheduled them;
4. the public reason codes of include/openssl/cipher.h pick the function:
   seal = TOO_LARGE (117) without BAD_DECRYPT (101) or INVALID_OPERATION (112),
   seal_scatter = INVALID_OPERATION without the other two, open = BAD_DECRYPT without the other two.
   Each must be exactly one function, or nothing is reported. The key set-up entries are *every*
   function raising UNSUPPORTED_KEY_SIZE (120) and none of the three above: init_with_direction,
   and EVP_AEAD_CTX_init when the compiler inlined the former into it (rustup 1.29 does). Each new
   key passes through one of them, which is where a ctx address, recycled by malloc, must lose the
   connection it was bound to.

It also lists which functions reference rustls panic locations in record_layer.rs (via .rela.dyn),
to show where rustls's record layer ended up after inlining.

Prototype only: it shells out to readelf and objdump. guard's implementation would use object +
gimli (eh_frame) + iced-x86 in guard-userspace/src/hooks/.
"""

import bisect
import re
import struct
import subprocess
import sys

ERR_LIB_CIPHER = 30
TOO_LARGE, BAD_DECRYPT, INVALID_OPERATION, UNSUPPORTED_KEY_SIZE = 117, 101, 112, 120
AEAD_FILE = b"crypto/fipsmodule/cipher/aead.c\0"


def loads(data):
    """PT_LOAD segments: (vaddr, offset, filesz, flags)."""
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    out = []
    for i in range(phnum):
        p_type, p_flags, p_off, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:
            out.append((p_vaddr, p_off, p_filesz, p_flags))
    return out


def vaddr_of(segs, off):
    for v, o, n, _ in segs:
        if o <= off < o + n:
            return v + off - o
    return None


def strings_ending(data, segs, suffix):
    """Virtual addresses of NUL-terminated strings that end with `suffix`."""
    out, at = [], data.find(suffix)
    while at >= 0:
        start = data.rfind(b"\0", 0, at) + 1
        out.append((vaddr_of(segs, start), data[start:at + len(suffix) - 1].decode()))
        at = data.find(suffix, at + 1)
    return out


def rip_refs(data, segs, targets):
    """Code addresses of `lea r64, [rip+disp32]` whose target is in `targets`."""
    refs = []
    for v, o, n, flags in segs:
        if not flags & 1:
            continue
        code = data[o:o + n]
        for m in re.finditer(rb"[\x48\x4c]\x8d[\x05\x0d\x15\x1d\x25\x2d\x35\x3d]", code):
            i = m.start()
            disp, = struct.unpack_from("<i", code, i + 3)
            if v + i + 7 + disp in targets:
                refs.append((v + i, v + i + 7 + disp))
    return refs


def fdes(path):
    """Function bounds from .eh_frame: sorted [(start, end)]."""
    out = subprocess.run(["readelf", "--debug-dump=frames", path], capture_output=True,
                         text=True, check=True).stdout
    spans = [(int(a, 16), int(b, 16)) for a, b in re.findall(r"FDE cie=\w+ pc=(\w+)\.\.(\w+)", out)]
    return sorted(spans)


def containing(spans, addr):
    i = bisect.bisect_right(spans, (addr, float("inf"))) - 1
    if i >= 0 and spans[i][0] <= addr < spans[i][1]:
        return spans[i]
    return None


ARGS = {"edi": 0, "rdi": 0, "esi": 1, "rsi": 1, "edx": 2, "rdx": 2, "ecx": 3, "rcx": 3,
        "r8d": 4, "r8": 4, "r9d": 5, "r9": 5}


def error_calls(path, span, file_addr):
    """Reasons of the ERR_put_error(30, 0, reason, file_addr, line) calls in one function."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-M", "intel",
                          f"--start-address={span[0]:#x}", f"--stop-address={span[1]:#x}", path],
                         capture_output=True, text=True, check=True).stdout
    regs, reasons = {}, []
    for line in out.splitlines():
        m = re.match(r"\s*[0-9a-f]+:\s+(\w+)\s*(.*)", line)
        if not m:
            continue
        op, rest = m.group(1), m.group(2)
        # A direct call, or a direct jump to a call that several error sites share (clang).
        if op == "call" or op == "jmp" and re.match(r"(0x)?[0-9a-f]+\b", rest):
            if regs.get(3) == file_addr and regs.get(0) == ERR_LIB_CIPHER and 2 in regs:
                reasons.append(regs[2])
            regs = {}
            continue
        mm = re.match(r"(\w+),(0x[0-9a-f]+|\d+)$", rest)
        if op == "mov" and mm and mm.group(1) in ARGS:
            regs[ARGS[mm.group(1)]] = int(mm.group(2), 0)
            continue
        mm = re.match(r"(\w+),\[rip\+0x[0-9a-f]+\]\s+# (?:0x)?([0-9a-f]+)", rest)
        if op == "lea" and mm and mm.group(1) in ARGS:
            regs[ARGS[mm.group(1)]] = int(mm.group(2), 16)
            continue
        mm = re.match(r"(\w+),(\w+)$", rest)
        if op == "xor" and mm and mm.group(1) == mm.group(2) and mm.group(1) in ARGS:
            regs[ARGS[mm.group(1)]] = 0
    return reasons


def relocated_pointers(path):
    """R_X86_64_RELATIVE relocations: {where: target}."""
    out = subprocess.run(["readelf", "-rW", path], capture_output=True, text=True).stdout
    return {int(a, 16): int(b, 16)
            for a, b in re.findall(r"^([0-9a-f]+)\s+\w+\s+R_X86_64_RELATIVE\s+([0-9a-f]+)", out, re.M)}


def main():
    path = sys.argv[1]
    data = open(path, "rb").read()
    segs = loads(data)
    spans = fdes(path)
    print(f"{path}: {len(spans)} FDEs")

    files = strings_ending(data, segs, AEAD_FILE)
    print("aead.c __FILE__ strings:", [(hex(a), s) for a, s in files])
    found = {}
    for file_addr, _ in files:
        funcs = {containing(spans, ref) for ref, _ in rip_refs(data, segs, {file_addr})}
        for span in sorted(f for f in funcs if f):
            reasons = error_calls(path, span, file_addr)
            print(f"  function {span[0]:#x}..{span[1]:#x}: CIPHER reasons {sorted(set(reasons))}")
            found[span] = set(reasons)

    def only(want, without):
        hits = [s for s, r in found.items() if want in r and not r & without]
        return hits[0][0] if len(hits) == 1 else None

    result = {
        "EVP_AEAD_CTX_seal": only(TOO_LARGE, {BAD_DECRYPT, INVALID_OPERATION}),
        "EVP_AEAD_CTX_seal_scatter": only(INVALID_OPERATION, {TOO_LARGE, BAD_DECRYPT}),
        "EVP_AEAD_CTX_open": only(BAD_DECRYPT, {TOO_LARGE, INVALID_OPERATION}),
    }
    inits = sorted(s[0] for s, r in found.items()
                   if UNSUPPORTED_KEY_SIZE in r and not r & {TOO_LARGE, BAD_DECRYPT, INVALID_OPERATION})
    for name, addr in result.items():
        print(f"found {name} at {addr:#x}" if addr else f"no single {name}")
    print("found key set-up entries at", " ".join(hex(a) for a in inits))
    if inits:
        result["EVP_AEAD_CTX_init_with_direction"] = inits[-1]

    # Where rustls's record layer went: functions that reference its panic locations.
    relocs = relocated_pointers(path)
    for rs in (b"/src/record_layer.rs\0", b"/src/common_state.rs\0"):
        for s_addr, s in strings_ending(data, segs, rs):
            # A core::panic::Location is {file: &str, line: u32, col: u32}; its file pointer is
            # a RELATIVE relocation to the string.
            locs = {where for where, target in relocs.items() if target == s_addr}
            # RELR (packed relative relocations, static-pie) and non-PIE keep the pointer itself
            # in the file: look for it in the data segments.
            needle = struct.pack("<Q", s_addr)
            for v, o, n, flags in segs:
                if flags & 1:
                    continue
                at = data.find(needle, o, o + n)
                while at >= 0:
                    if (at - o) % 8 == 0:
                        locs.add(v + at - o)
                    at = data.find(needle, at + 1, o + n)
            users = {containing(spans, ref) for ref, _ in rip_refs(data, segs, locs)}
            print(f"{s}: {len(locs)} panic locations, referenced from "
                  f"{sorted(hex(u[0]) for u in users if u)}")

    if len(sys.argv) > 2:
        syms = subprocess.run(["nm", sys.argv[2]], capture_output=True, text=True).stdout
        truth = {}
        for line in syms.splitlines():
            parts = line.split()
            for name in result:
                if len(parts) == 3 and parts[2].endswith("_" + name) or parts[-1] == name:
                    truth[name] = int(parts[0], 16)
        for name, addr in result.items():
            t = truth.get(name)
            verdict = "MATCH" if t is not None and t == addr else "DIFFERS"
            print(f"{name}: found {addr and hex(addr)}, symbol {t and hex(t)}: {verdict}")


if __name__ == "__main__":
    main()
