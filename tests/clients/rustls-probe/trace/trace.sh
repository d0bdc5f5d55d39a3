#!/bin/sh
# trace.sh BINARY [ARGS...] > trace.txt   (root; tracefs mounted at /sys/kernel/tracing)
#
# Runs BINARY ARGS (the stripped rustls-probe, or Codex CLI) under tracefs uprobes placed where
# find_aead.py located aws-lc's EVP_AEAD_CTX_{seal,seal_scatter,open} and the key set-up entries,
# and the recvfrom/writev/close syscall tracepoints, all in a private tracefs instance filtered to
# the program's threads. A dynamically linked BINARY also gets an uprobe on libc's writev, which
# shows the iovec bases (tracefs cannot read them at the syscall). Prints the trace; removes its
# events and instance afterwards. check_pairing.py reads the output.
set -eu
B=$(readlink -f "$1"); shift
HERE=$(dirname "$(readlink -f "$0")")
T=/sys/kernel/tracing; G=rustlsprobe; I=$T/instances/$G
LIBC=/lib/x86_64-linux-gnu/libc.so.6
# uprobes take file offsets: vaddr minus (vaddr - offset) of the executable PT_LOAD.
delta() { readelf -lW "$1" | awk '$1=="LOAD" && / R E / {print $3, $2; exit}' | { read v o; echo $((v - o)); }; }
D=$(delta "$B"); DL=$(delta $LIBC)
off() { printf '0x%x' $(( $1 - D )); }
F=$(python3 "$HERE/../find_aead.py" "$B")
get() { echo "$F" | sed -n "s/^found EVP_AEAD_CTX_$1 at \(0x[0-9a-f]*\)$/\1/p"; }
SEAL=$(get seal); SC=$(get seal_scatter); OPEN=$(get open)
INITS=$(echo "$F" | sed -n 's/^found key set-up entries at //p')
[ -n "$SEAL" ] && [ -n "$SC" ] && [ -n "$OPEN" ] && [ -n "$INITS" ] || { echo "$F" >&2; exit 1; }
WRITEV=
if readelf -lW "$B" | grep -q INTERP; then
  WRITEV=$(( $(nm -D $LIBC | awk '$3 ~ /^writev@/ {print "0x" $1; exit}') - DL ))
fi
cleanup() {
  [ -d $I ] && { echo 0 > $I/tracing_on; echo > $I/set_event_pid; echo > $I/set_event; rmdir $I; }
  sed -n "s/^[pr]:$G\/\([a-z_0-9]*\) .*/-:$G\/\1/p" $T/uprobe_events > /tmp/$G.undef
  while read -r u; do echo "$u" >> $T/uprobe_events; done < /tmp/$G.undef
}
trap cleanup EXIT
cleanup
{
  echo "p:$G/seal $B:$(off $SEAL) ctx=%di:x64 out=%si:x64 inp=+8(%sp):x64 inlen=+16(%sp):u64 ad=+0(+24(%sp)):x8[5] adlen=+32(%sp):u64 pt=+0(+8(%sp)):x8[8]"
  echo "p:$G/sealsc $B:$(off $SC) ctx=%di:x64 out=%si:x64 inp=+16(%sp):x64 inlen=+24(%sp):u64 ad=+0(+48(%sp)):x8[13] adlen=+56(%sp):u64 pt=+0(+16(%sp)):x8[8]"
  echo "p:$G/open $B:$(off $OPEN) ctx=%di:x64 out=%si:x64 inp=+8(%sp):x64 inlen=+16(%sp):u64 ad=+0(+24(%sp)):x8[5] adlen=+32(%sp):u64"
  echo "r:$G/open_ret $B:$(off $OPEN) rc=\$retval:s32"
  [ -z "$WRITEV" ] || echo "p:$G/wv $LIBC:$(printf 0x%x $WRITEV) fd=%di:s32 vlen=%dx:u64 b0=+0(%si):x64 l0=+8(%si):u64 b1=+16(%si):x64 l1=+24(%si):u64 b2=+32(%si):x64 l2=+40(%si):u64"
  n=0; for a in $INITS; do echo "p:$G/init$n $B:$(off $a) ctx=%di:x64"; n=$((n + 1)); done
} | while read -r def; do echo "$def" >> $T/uprobe_events; done
mkdir $I
echo 1 > $I/options/event-fork
for e in $I/events/$G/*/enable; do echo 1 > "$e"; done
for s in sys_enter_recvfrom sys_exit_recvfrom sys_enter_writev sys_exit_writev sys_enter_close; do echo 1 > $I/events/syscalls/$s/enable; done
sh -c 'echo $$ > "$0/set_event_pid"; echo 1 > "$0/tracing_on"; exec "$@"' "$I" "$B" "$@"
echo 0 > $I/tracing_on
grep -v '^#' $I/trace
