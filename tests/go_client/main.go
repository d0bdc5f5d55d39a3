// A Go crypto/tls client for guard's end-to-end tests. Stdlib only, HTTP/1.1 keep-alive.
//
//	goclient llm  BASE CA_FILE [encoding]  one JSON line per call, like client_fetch.mjs
//	goclient loop BASE CA_FILE N           N GETs of /v1/models over 16 keep-alive
//	                                       connections; prints how many got a 200
//	goclient api BASE METHOD PATH HOST [FORM_BODY]
//	                                       one request over HTTP/2 (as client-go sends them),
//	                                       with :authority HOST; fails unless HTTP/2 200
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func client(caFile string) *http.Client {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: false,
		// An empty map turns HTTP/2 off: the mock speaks HTTP/1.1 only.
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConnsPerHost: workers,
	}
	return &http.Client{Transport: tr}
}

// Connections the loop uses at once: the mock answers each request in two TCP writes, so one
// connection waits out a delayed ACK (~40 ms) per request.
const workers = 16

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

type call struct {
	provider string
	streamed bool
	path     string
	body     string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "api" {
		api(os.Args[2:])
		return
	}
	if len(os.Args) < 4 {
		fail(fmt.Errorf("usage: goclient llm|loop BASE CA_FILE [encoding|N]"))
	}
	mode, base, c := os.Args[1], os.Args[2], client(os.Args[3])
	// A program's first milliseconds can precede guard attaching to its binary.
	if ms, err := strconv.Atoi(os.Getenv("MOCK_CLIENT_DELAY_MS")); err == nil {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	// Or wait until told (a line on stdin) that the probes are in place.
	if os.Getenv("GOCLIENT_WAIT_STDIN") != "" {
		var line string
		fmt.Scanln(&line)
	}
	switch mode {
	case "llm":
		enc := ""
		if len(os.Args) > 4 {
			enc = os.Args[4]
		}
		llm(c, base, enc)
	case "loop":
		n, err := strconv.Atoi(os.Args[4])
		if err != nil {
			fail(err)
		}
		loop(c, base, n)
	default:
		fail(fmt.Errorf("unknown mode %q", mode))
	}
}

func llm(c *http.Client, base, enc string) {
	msg := `"messages":[{"role":"user","content":"Hi"}]`
	calls := []call{
		{"anthropic", false, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":64,` + msg + `}`},
		{"anthropic", true, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,` + msg + `}`},
		{"openai_chat", false, "/v1/chat/completions", `{"model":"gpt-4o",` + msg + `}`},
		{"openai_chat", true, "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},` + msg + `}`},
		{"openai_responses", true, "/v1/responses", `{"model":"gpt-5","input":"Hi","stream":true}`},
	}
	for _, k := range calls {
		req, err := http.NewRequest("POST", base+k.path, bytes.NewBufferString(k.body))
		if err != nil {
			fail(err)
		}
		req.Header.Set("content-type", "application/json")
		req.Header.Set("x-mock-usage", "input=300,output=40,cache_read=100,reasoning=12")
		if enc != "" {
			// Asking explicitly turns off Go's transparent gzip, so the coding stays visible.
			req.Header.Set("accept-encoding", enc)
			req.Header.Set("x-mock-encoding", enc)
		}
		res, err := c.Do(req)
		if err != nil {
			fail(err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil {
			fail(err)
		}
		var usage map[string]uint64
		if err := json.Unmarshal([]byte(res.Header.Get("x-mock-usage-normalised")), &usage); err != nil {
			fail(err)
		}
		var coding interface{}
		if e := res.Header.Get("content-encoding"); e != "" {
			coding = e
		}
		line, _ := json.Marshal(map[string]interface{}{
			"client": "go", "provider": k.provider, "streamed": k.streamed, "status": res.StatusCode,
			"encoding": coding, "inference": true, "usage": usage, "body_bytes": n,
		})
		fmt.Println(string(line))
	}
}

func loop(c *http.Client, base string, n int) {
	var done int64
	var wg sync.WaitGroup
	next := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		next <- struct{}{}
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				res, err := c.Get(base + "/v1/models")
				if err != nil {
					fail(err)
				}
				if _, err := io.Copy(io.Discard, res.Body); err != nil {
					fail(err)
				}
				res.Body.Close()
				if res.StatusCode == 200 {
					atomic.AddInt64(&done, 1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Println(done)
}

// api sends one request over HTTP/2 to a mock whose certificate is not checked (the request
// rules read :authority, which names a cloud API the mock stands for).
func api(args []string) {
	if len(args) < 4 {
		fail(fmt.Errorf("usage: goclient api BASE METHOD PATH HOST [FORM_BODY]"))
	}
	base, method, path, host := args[0], args[1], args[2], args[3]
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}
	var body io.Reader
	if len(args) > 4 {
		body = bytes.NewBufferString(args[4])
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		fail(err)
	}
	req.Host = host
	req.Header.Set("authorization", "Bearer mock-token-never-logged")
	if body != nil {
		req.Header.Set("content-type", "application/x-www-form-urlencoded")
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		fail(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != 200 {
		fail(fmt.Errorf("want HTTP/2 200, got %s %d", res.Proto, res.StatusCode))
	}
	fmt.Println(res.Proto, res.StatusCode)
}
