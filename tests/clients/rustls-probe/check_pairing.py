#!/usr/bin/env python3
"""check_pairing.py TRACE: checks the connection-identity rules of docs/dev-notes/rustls.md on a
tracefs capture of the probe (uprobes on aws-lc's seal/seal_scatter/open found by find_aead.py,
libc writev, and the recvfrom syscall tracepoints; see the note's "Prototype" section).

- read side: an open is bound to the fd of the last recvfrom *on the same thread* when the record
  it opens ends inside the bytes that recvfrom delivered: ubuf < in + in_len <= ubuf + ret;
- write side: a seal is bound to the fd of the first later writev (any thread of the process) one
  of whose iovec bases is out - 5 (TLS 1.3, TLS 1.2 ChaCha: record header) or out - 13 (TLS 1.2
  GCM: header + explicit nonce). Where the capture has no iovec bases (a static binary: no libc
  writev uprobe), the seals of a thread are bound to its next writev, and that writev must have
  written at least the records' bytes (header + plaintext + 16-byte tag).
A ctx loses its binding at EVP_AEAD_CTX_init_with_direction: malloc recycles ctx addresses, also
across connections. Prints per-fd counts, failures, and any ctx bound to two fds between inits.
"""
import re
import sys
from collections import defaultdict

LINE = re.compile(r"^\s*(\S+)-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+):\s+(\w+)(?:[:(]| ->)(.*)$")


def fields(s):
    return {k: v for k, v in re.findall(r"(\w+)[=:] ?(\{[^}]*\}|[^\s,)]+)", s)}


def main():
    last_recv = {}       # tid -> (fd, ubuf)
    recv_pending = {}    # tid -> (fd, ubuf) between enter and exit
    # Pending seals by output address: a newer seal at the same address means malloc recycled
    # the record buffer, so the older one was written (or dropped) already.
    pending_seals = {}   # out -> (tid, ctx, kind)
    bind = defaultdict(set)  # ctx -> fds since its last init
    inits = 0
    per_fd = defaultdict(lambda: [0, 0])
    fails = defaultdict(int)
    same_thread = [0, 0]
    by_thread = defaultdict(list)   # tid -> sealed record sizes awaiting that thread's writev
    writev_at = {}                  # tid -> (fd, record bytes expected)
    length_ok = [0, 0]
    has_iov = any(" wv: " in l for l in open(sys.argv[1]))
    for line in open(sys.argv[1]):
        m = LINE.match(line)
        if not m:
            continue
        tid, ev, rest = int(m.group(2)), m.group(4), m.group(5)
        f = fields(rest)
        if ev.startswith("init"):
            inits += 1
            bind.pop(f["ctx"], None)
            pending_seals = {o: p for o, p in pending_seals.items() if p[1] != f["ctx"]}
        elif ev == "sys_recvfrom" and "->" not in line:
            recv_pending[tid] = (int(f["fd"], 16), int(f["ubuf"], 16))
        elif ev == "sys_recvfrom":
            ret = int(rest.strip(), 16)
            fd, ubuf = recv_pending.pop(tid, (None, None))
            if fd is not None and 0 < ret < 1 << 63:
                last_recv[tid] = (fd, ubuf, ret)
        elif ev == "open":
            inp, inlen, ctx = int(f["inp"], 16), int(f["inlen"]), f["ctx"]
            r = last_recv.get(tid)
            if r and r[1] < inp + inlen <= r[1] + r[2]:
                bind[ctx].add(r[0])
                per_fd[r[0]][1] += 1
            else:
                fails["open without a matching recvfrom on its thread"] += 1
        elif ev in ("seal", "sealsc"):
            if has_iov:
                pending_seals[int(f["out"], 16)] = (tid, f["ctx"], ev, line.strip()[:160])
            else:
                extra = 8 if ev == "sealsc" else 0
                by_thread[tid].append((f["ctx"], 5 + extra + int(f["inlen"]) + 16))
        elif ev == "sys_writev" and not has_iov and "->" not in line and by_thread[tid]:
            fd = int(f["fd"], 16)
            for ctx, _ in by_thread[tid]:
                bind[ctx].add(fd)
                per_fd[fd][0] += 1
                same_thread[1] += 1
            writev_at[tid] = sum(n for _, n in by_thread[tid])
            by_thread[tid] = []
        elif ev == "sys_writev" and not has_iov and "->" in line and tid in writev_at:
            length_ok[int(rest.strip(), 16) >= writev_at.pop(tid)] += 1
        elif ev == "wv":
            fd = int(f["fd"])
            bases = {int(f[k], 16) for k in ("b0", "b1", "b2") if k in f}
            for base in bases:
                for out in (base + 5, base + 13):
                    if out in pending_seals:
                        s_tid, ctx, _, _ = pending_seals.pop(out)
                        bind[ctx].add(fd)
                        per_fd[fd][0] += 1
                        same_thread[s_tid == tid] += 1
    fails["seal never matched by a writev iovec"] += len(pending_seals)
    for p in pending_seals.values():
        print("  unmatched:", p[3])
    print(f"{sys.argv[1]}: records bound per fd (sealed, opened): "
          + ", ".join(f"fd {fd}: {w}/{r}" for fd, (w, r) in sorted(per_fd.items())))
    print(f"  seal->writev on the same thread: {same_thread[1]}, on another thread: {same_thread[0]}")
    reused = {c: fds for c, fds in bind.items() if len(fds) > 1}
    print(f"  {inits} key inits; {len(reused)} ctx bound to more than one fd between inits: {reused}")
    if not has_iov:
        print(f"  writev wrote at least the sealed records: {length_ok[1]}, less: {length_ok[0]}")
        fails["seal never followed by a writev on its thread"] += sum(map(len, by_thread.values()))
    print(f"  failures: {dict(fails)}")


if __name__ == "__main__":
    main()
