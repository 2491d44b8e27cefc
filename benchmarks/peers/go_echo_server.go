// Go's crypto/tls as a benchmark peer: the nul protocol, standard library
// only (Debian's golang-go), one goroutine per connection.
//
//	go run go_echo_server.go CERT KEY PORT
package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
)

func serve(c net.Conn) {
	defer c.Close() // sends close_notify, then closes
	buf := make([]byte, 16384)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			data := buf[:n]
			end := bytes.IndexByte(data, 0)
			if end >= 0 {
				data = data[:end]
			}
			if len(data) > 0 {
				if _, werr := c.Write(data); werr != nil {
					return
				}
			}
			if end >= 0 {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	cert, err := tls.LoadX509KeyPair(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:"+os.Args[3], &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go serve(c)
	}
}
