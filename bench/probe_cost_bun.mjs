// Per-call cost of SSL_write and SSL_read in Bun (BoringSSL, statically linked and stripped:
// guard finds these functions structurally). The Bun twin of bench/probe_cost.c.
//
// A TLS client (Bun.connect) and a TLS server (Bun.listen) in this one process, over a Unix
// stream socket: loopback TCP made the cost of a small write bimodal (about 1.7 or 5.2 µs on
// this VM, apparently as TCP autocorking held the segment back or not), which swamped the
// probes' cost.
// JavaScript cannot wrap a single SSL_read, so the two modes differ:
//  - write: each client `socket.write(buf)` is timed. In Bun that call is one SSL_write of the
//    whole buffer (one TLS record up to 16 KiB) plus the send() of its ciphertext. After every
//    BATCH writes the loop waits, untimed, until the server has read them.
//  - read: the server writes BATCH records (untimed); they sit in the client's socket buffer.
//    Then the time from there until the client's data callback has seen all of them, divided by
//    BATCH: one event-loop turn, recv(), SSL_read once per record plus once more that returns
//    "want read", and the JS callback, spread over the records.
//
// Prints "ready" once both handshakes are done; when PROBE_COST_WAIT_STDIN is set it then waits
// for a line on stdin (so that a daemon can hook the bun binary first).
//
// usage: bun probe_cost_bun.mjs CERT KEY SIZE CALLS REPS [write|read] -> one ns/call per rep

import { rmSync } from "node:fs";
import { tmpdir } from "node:os";

const [certFile, keyFile, sizeArg, callsArg, repsArg, mode = "write"] = process.argv.slice(2);
const size = Number(sizeArg), calls = Number(callsArg), reps = Number(repsArg);
if (!keyFile || !(size > 0 && size <= 16384) || !(calls > 0) || !(reps > 0)) {
  console.error("usage: probe_cost_bun.mjs CERT KEY SIZE CALLS REPS [write|read]");
  process.exit(2);
}
const fail = (what) => {
  console.error(`probe_cost_bun: ${what}`);
  process.exit(1);
};
// Small enough for the socket's buffer: every write goes out whole, at once. 256 records of
// 64 B, 7 of 16 KiB.
const BATCH = Math.max(1, Math.min(256, Math.floor(128 * 1024 / (size + 32))));
const path = `${tmpdir()}/guard-probe-cost-${process.pid}.sock`;
rmSync(path, { force: true });

// Bytes each side has received, and who waits for how many.
const got = { server: 0, client: 0 };
const waiting = { server: null, client: null };
let readDone = 0; // when the client's callback saw the last byte awaited
const arrived = (side, n) => {
  got[side] += n;
  const w = waiting[side];
  if (w && got[side] >= w.want) {
    if (side === "client") readDone = Bun.nanoseconds();
    waiting[side] = null;
    w.resolve();
  }
};
const until = (side, want) =>
  got[side] >= want ? Promise.resolve() : new Promise((resolve) => (waiting[side] = { want, resolve }));

let serverSocket;
const serverReady = Promise.withResolvers();
const server = Bun.listen({
  unix: path,
  tls: { cert: Bun.file(certFile), key: Bun.file(keyFile) },
  socket: {
    handshake(s, ok, err) {
      if (!ok) fail(`server handshake: ${err}`);
      serverSocket = s;
      serverReady.resolve();
    },
    data(_s, d) {
      arrived("server", d.byteLength);
    },
    error(_s, e) {
      fail(`server: ${e}`);
    },
  },
});
const clientReady = Promise.withResolvers();
const client = await Bun.connect({
  unix: path,
  tls: { rejectUnauthorized: false },
  socket: {
    handshake(_s, ok, err) {
      // The certificate is not verified (rejectUnauthorized: false): only a failure without
      // a verification error is one.
      if (!ok && !err) fail("client handshake failed");
      clientReady.resolve();
    },
    data(_s, d) {
      arrived("client", d.byteLength);
    },
    error(_s, e) {
      fail(`client: ${e}`);
    },
  },
});
await Promise.all([serverReady.promise, clientReady.promise]);

console.log("ready");
if (process.env.PROBE_COST_WAIT_STDIN) {
  for await (const _line of console) break;
}

const buf = Buffer.alloc(size, "x");
for (let r = 0; r < reps; r++) {
  let spent = 0;
  for (let done = 0; done < calls; ) {
    const n = Math.min(BATCH, calls - done);
    if (mode === "read") {
      const want = got.client + n * size;
      for (let i = 0; i < n; i++) {
        if (serverSocket.write(buf) !== size) fail("server write was short");
      }
      const t0 = Bun.nanoseconds();
      await until("client", want);
      spent += readDone - t0;
    } else {
      const want = got.server + n * size;
      for (let i = 0; i < n; i++) {
        const t0 = Bun.nanoseconds();
        const w = client.write(buf);
        spent += Bun.nanoseconds() - t0;
        if (w !== size) fail(`client write was short: ${w} of ${size}`);
      }
      await until("server", want);
    }
    done += n;
  }
  console.log((spent / calls).toFixed(1));
}
client.end();
server.stop(true);
rmSync(path, { force: true });
process.exit(0);
