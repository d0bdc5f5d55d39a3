// Per-call cost of Go's crypto/tls (*Conn).Write or (*Conn).Read: the Go twin of
// bench/probe_cost.c, for the hooks guard finds through .gopclntab.
//
// Client and server tls.Conn talk over an in-memory connection (a byte queue each way), so no
// socket and, once the handshake is done, no goroutine switch is timed: what is timed is the
// library call plus whatever probes are attached to it. In write mode each client Write is timed
// and the ciphertext is then dropped at the queue (never decrypted). In read mode the client's
// record is written untimed and each server Read is timed.
//
// Before the timed phase it prints "ready" and, when PROBE_COST_WAIT_STDIN is set, waits for a
// line on stdin (so that a daemon can hook this binary first).
//
// usage: probe_cost_go CERT KEY SIZE CALLS REPS [write|read] -> one ns/call figure per repetition
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// queue is one direction of the in-memory connection: writes never block, reads wait for data.
type queue struct {
	mu   sync.Mutex
	cond *sync.Cond
	buf  bytes.Buffer
}

func newQueue() *queue {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) write(b []byte) {
	q.mu.Lock()
	q.buf.Write(b)
	q.mu.Unlock()
	q.cond.Broadcast()
}

func (q *queue) read(b []byte) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.buf.Len() == 0 {
		q.cond.Wait()
	}
	n, _ := q.buf.Read(b)
	return n
}

func (q *queue) drop() {
	q.mu.Lock()
	q.buf.Reset()
	q.mu.Unlock()
}

type memConn struct{ in, out *queue }

func (c memConn) Read(b []byte) (int, error)       { return c.in.read(b), nil }
func (c memConn) Write(b []byte) (int, error)      { c.out.write(b); return len(b), nil }
func (c memConn) Close() error                     { return nil }
func (c memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c memConn) SetDeadline(time.Time) error      { return nil }
func (c memConn) SetReadDeadline(time.Time) error  { return nil }
func (c memConn) SetWriteDeadline(time.Time) error { return nil }

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "probe_cost_go: %s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 6 && len(os.Args) != 7 {
		fail("usage", fmt.Errorf("probe_cost_go CERT KEY SIZE CALLS REPS [write|read]"))
	}
	reading := len(os.Args) == 7 && os.Args[6] == "read"
	size, err1 := strconv.Atoi(os.Args[3])
	calls, err2 := strconv.Atoi(os.Args[4])
	reps, err3 := strconv.Atoi(os.Args[5])
	if err1 != nil || err2 != nil || err3 != nil || size <= 0 || size > 16384 {
		fail("arguments", fmt.Errorf("SIZE (1..16384), CALLS and REPS are numbers"))
	}
	cert, err := tls.LoadX509KeyPair(os.Args[1], os.Args[2])
	if err != nil {
		fail("certificate", err)
	}
	c2s, s2c := newQueue(), newQueue()
	// One record per call: without this, Go starts a connection with small records.
	client := tls.Client(memConn{in: s2c, out: c2s}, &tls.Config{InsecureSkipVerify: true, DynamicRecordSizingDisabled: true})
	server := tls.Server(memConn{in: c2s, out: s2c}, &tls.Config{Certificates: []tls.Certificate{cert}, DynamicRecordSizingDisabled: true})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := server.Handshake(); err != nil {
			fail("server handshake", err)
		}
	}()
	if err := client.Handshake(); err != nil {
		fail("client handshake", err)
	}
	wg.Wait()
	s2c.drop() // session tickets: the client never reads

	fmt.Println("ready")
	if os.Getenv("PROBE_COST_WAIT_STDIN") != "" {
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fail("stdin", err)
		}
	}
	buf, rbuf := bytes.Repeat([]byte{'x'}, size), make([]byte, size)
	for r := 0; r < reps; r++ {
		var spent time.Duration
		for i := 0; i < calls; i++ {
			if reading {
				if n, err := client.Write(buf); err != nil || n != size {
					fail("Write", err)
				}
				t0 := time.Now()
				n, err := server.Read(rbuf)
				spent += time.Since(t0)
				if err != nil || n != size {
					fail("Read", fmt.Errorf("%d of %d bytes: %v", n, size, err))
				}
				continue
			}
			t0 := time.Now()
			n, err := client.Write(buf)
			spent += time.Since(t0)
			if err != nil || n != size {
				fail("Write", err)
			}
			c2s.drop()
		}
		fmt.Printf("%.1f\n", float64(spent.Nanoseconds())/float64(calls))
	}
}
