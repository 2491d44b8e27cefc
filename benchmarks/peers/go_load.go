// A compiled TLS load generator for the echo servers in benchmarks/: the
// same scenarios as `tlsecho bench` (pingpong, stream, connect, full or
// resumed; http: keep-alive GETs with net/http, HTTP/1.1 or -alpn h2), every
// byte verified, JSON on stdout with the same keys, so that
// compare.py can measure servers under a client whose own system calls are
// cheap. Standard library only; built by `make bench-tools`.
//
//	go_load -port 10000 -cafile ca.crt -scenario pingpong -c 16 -s 64 -duration 3
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	host, servername, cafile, mode, scenario, path, alpn string
	port, conns, size                        int
	duration, warmup                         float64
	resume                                   bool
}

type worker struct {
	ops, bytes, resumed, connections int64
	latencies                        []time.Duration
	errors                           map[string]int
}

func (w *worker) fail(kind string) {
	w.errors[kind]++
}

// open: a persistent connection for pingpong and stream (nil: it failed).
func (w *worker) open(o options) *tls.Conn {
	c, err := dial(o, tlsConfig(o))
	if err != nil {
		w.fail("connect: " + err.Error())
		return nil
	}
	w.connections++
	return c
}

// done counts an operation that began at t0, if it began after the warm-up.
func (w *worker) done(t0, start time.Time) bool {
	if !t0.After(start) {
		return false
	}
	w.ops++
	w.latencies = append(w.latencies, time.Since(t0))
	return true
}

// payload: random bytes that are never the framing's terminator (NUL, or a
// newline before the last byte in line mode).
func payload(size int, mode string, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(r.Intn(254) + 1)
		if p[i] == '\n' {
			p[i] = 'n'
		}
	}
	if mode == "line" && size > 0 {
		p[size-1] = '\n'
	}
	return p
}

func tlsConfig(o options) *tls.Config {
	cfg := &tls.Config{ServerName: o.servername, MinVersion: tls.VersionTLS12}
	if o.cafile != "" {
		pem, err := os.ReadFile(o.cafile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "go_load:", err)
			os.Exit(2)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cfg.RootCAs = pool
	}
	if o.resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	}
	return cfg
}

func dial(o options, cfg *tls.Config) (*tls.Conn, error) {
	raw, err := net.DialTimeout("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.port)), 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// finish ends a persistent session as the framing wants: the NUL (the server
// closes after the echo), or just close_notify.
func finish(c *tls.Conn, mode string) {
	if mode == "nul" {
		c.Write([]byte{0})
		io.Copy(io.Discard, c)
	}
	c.Close()
}

func pingpong(o options, w *worker, start, end time.Time, seed int64) {
	c := w.open(o)
	if c == nil {
		return
	}
	msg := payload(o.size, o.mode, seed)
	buf := make([]byte, len(msg))
	for {
		now := time.Now()
		if now.After(end) {
			break
		}
		c.SetDeadline(now.Add(30 * time.Second))
		if _, err := c.Write(msg); err != nil {
			w.fail("write")
			break
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			w.fail("read")
			break
		}
		if !bytes.Equal(buf, msg) {
			w.fail("wrong bytes")
			break
		}
		w.done(now, start)
	}
	finish(c, o.mode)
}

func stream(o options, w *worker, start, end time.Time, seed int64) {
	c := w.open(o)
	if c == nil {
		return
	}
	c.SetDeadline(end.Add(60 * time.Second))
	chunk := payload(64*1024, "raw", seed)
	var sent atomic.Int64
	var writerDone, writeFailed atomic.Bool
	go func() {
		defer writerDone.Store(true)
		for time.Now().Before(end) {
			n, err := c.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				writeFailed.Store(true)
				return
			}
		}
	}()
	buf := make([]byte, 64*1024)
	var got int64
	for !(writerDone.Load() && got >= sent.Load()) {
		if time.Now().After(end) {
			// The writer stops at the end; what it sent is back within this.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
		}
		n, err := c.Read(buf)
		if !matches(buf[:n], chunk, got) {
			w.fail("wrong bytes")
			c.Close()
			return
		}
		if time.Now().After(start) {
			w.bytes += int64(n)
		}
		got += int64(n)
		if err != nil {
			w.fail("read")
			break
		}
	}
	if writeFailed.Load() {
		w.fail("write")
	}
	w.ops = w.bytes / int64(len(chunk))
	finish(c, o.mode)
}

// matches: data is the stream of repeated chunks from offset on.
func matches(data, chunk []byte, offset int64) bool {
	at := int(offset % int64(len(chunk)))
	for len(data) > 0 {
		n := len(chunk) - at
		if n > len(data) {
			n = len(data)
		}
		if !bytes.Equal(data[:n], chunk[at:at+n]) {
			return false
		}
		data, at = data[n:], 0
	}
	return true
}

func connect(o options, w *worker, start, end time.Time, seed int64) {
	cfg := tlsConfig(o)
	msg := payload(o.size, o.mode, seed)
	for {
		t0 := time.Now()
		if t0.After(end) {
			return
		}
		c, err := dial(o, cfg)
		if err != nil {
			w.fail("connect: " + err.Error())
			time.Sleep(10 * time.Millisecond)
			continue
		}
		w.connections++
		resumed := c.ConnectionState().DidResume
		var echo []byte
		if o.mode == "nul" {
			c.Write(append(append([]byte{}, msg...), 0))
			echo, err = io.ReadAll(c)
		} else {
			c.Write(msg)
			echo = make([]byte, len(msg))
			_, err = io.ReadFull(c, echo)
		}
		c.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			w.fail("read")
			continue
		}
		if !bytes.Equal(echo, msg) {
			w.fail("wrong bytes")
			continue
		}
		if w.done(t0, start) && resumed {
			w.resumed++
		}
	}
}

// httpLoad: keep-alive GETs of o.path on one connection (HTTP/2 with -alpn
// h2), one at a time; every answer must be a 200 with the first one's body.
func httpLoad(o options, w *worker, start, end time.Time, seed int64) {
	tr := &http.Transport{
		TLSClientConfig:     tlsConfig(o),
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		ForceAttemptHTTP2:   o.alpn == "h2",
	}
	if o.alpn != "h2" {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	tr.TLSClientConfig.NextProtos = nil
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := "https://" + net.JoinHostPort(o.servername, strconv.Itoa(o.port)) + o.path
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	var want []byte
	for {
		t0 := time.Now()
		if t0.After(end) {
			break
		}
		resp, err := client.Get(url)
		if err != nil {
			w.fail("request: " + err.Error())
			time.Sleep(10 * time.Millisecond)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			w.fail(fmt.Sprintf("HTTP status %d", resp.StatusCode))
			continue
		}
		if (o.alpn == "h2") != (resp.ProtoMajor == 2) {
			w.fail("wrong HTTP version: " + resp.Proto)
			break
		}
		if want == nil {
			want = body
		} else if !bytes.Equal(body, want) {
			w.fail("wrong bytes")
			continue
		}
		if w.done(t0, start) {
			w.bytes += int64(len(body))
		}
	}
	w.connections = 1
	tr.CloseIdleConnections()
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(sorted)-1))
	return float64(sorted[i].Microseconds())
}

func main() {
	var o options
	flag.StringVar(&o.host, "host", "localhost", "server host")
	flag.IntVar(&o.port, "port", 10000, "server port")
	flag.StringVar(&o.servername, "servername", "", "SNI and the name checked (default: host)")
	flag.StringVar(&o.cafile, "cafile", "", "CA certificates to trust (PEM)")
	flag.StringVar(&o.mode, "mode", "nul", "the server's framing: nul, line or raw")
	flag.StringVar(&o.scenario, "scenario", "pingpong", "pingpong, stream, connect or http")
	flag.StringVar(&o.path, "path", "/health", "http: the path requested")
	flag.StringVar(&o.alpn, "alpn", "", "http: h2 for HTTP/2 (default: HTTP/1.1)")
	flag.IntVar(&o.conns, "c", 16, "concurrent connections")
	flag.IntVar(&o.size, "s", 64, "message size in bytes")
	flag.Float64Var(&o.duration, "duration", 5, "seconds measured")
	flag.Float64Var(&o.warmup, "warmup", 1, "seconds before measuring")
	flag.BoolVar(&o.resume, "resume", false, "connect: resume TLS sessions")
	flag.Bool("json", true, "JSON on stdout (always)")
	flag.Parse()
	if o.servername == "" {
		o.servername = o.host
	}
	if o.duration <= 0 || o.conns < 1 || o.size < 1 {
		fmt.Fprintln(os.Stderr, "go_load: -duration, -c and -s must be positive")
		os.Exit(2)
	}
	run := map[string]func(options, *worker, time.Time, time.Time, int64){
		"pingpong": pingpong, "stream": stream, "connect": connect, "http": httpLoad,
	}[o.scenario]
	if run == nil {
		fmt.Fprintln(os.Stderr, "go_load: unknown scenario", o.scenario)
		os.Exit(2)
	}
	start := time.Now().Add(time.Duration(o.warmup * float64(time.Second)))
	end := start.Add(time.Duration(o.duration * float64(time.Second)))
	workers := make([]*worker, o.conns)
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = &worker{errors: map[string]int{}}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			run(o, workers[i], start, end, int64(i+1))
		}(i)
	}
	wg.Wait()
	var ops, byteCount, resumed, conns int64
	var lat []time.Duration
	errs := map[string]int{}
	for _, w := range workers {
		ops += w.ops
		byteCount += w.bytes
		resumed += w.resumed
		conns += w.connections
		lat = append(lat, w.latencies...)
		for k, v := range w.errors {
			errs[k] += v
		}
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	out := map[string]any{
		"tool":                  "go_load (Go crypto/tls)",
		"scenario":              o.scenario,
		"ok":                    len(errs) == 0 && ops > 0,
		"operations":            ops,
		"operations_per_second": float64(ops) / o.duration,
		"connections":           conns,
		"resumed":               resumed,
		"errors":                errs,
	}
	if o.scenario == "stream" {
		out["bytes_verified"] = byteCount
		out["megabytes_per_second"] = float64(byteCount) / 1e6 / o.duration
	} else {
		out["latency_us"] = map[string]float64{
			"p50": percentile(lat, 50), "p90": percentile(lat, 90),
			"p99": percentile(lat, 99), "max": percentile(lat, 100),
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(out)
	if ok, _ := out["ok"].(bool); !ok {
		os.Exit(1)
	}
}
