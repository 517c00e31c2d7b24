// A HashiCorp yamux peer for YamuxGoInteropTests. It dials the port given as its argument and
// runs a yamux client session (odd stream ids) over it. Every line it prints is one event the
// test reads:
//
//	streams the test opens start with one mode byte:
//	  'E' echo everything back, then close     -> no line (the test checks the echo)
//	  'S' read everything to the end           -> "sink <sha256 hex> <length>" or "sink-error <err>"
//	streams it opens itself, all at once (so their SYNs race one another onto the wire), each
//	  writing a payload, reading it back, and closing -> "open-ok <i>" or "open-error <i> <err>"
//	  then "open-done <failures>"
//	the session ending                         -> "session-closed"
//
// Built by the test with GO111MODULE=off GOPATH=/usr/share/gocode against Debian's
// golang-github-hashicorp-yamux-dev.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/hashicorp/yamux"
)

var out sync.Mutex

func say(format string, args ...interface{}) {
	out.Lock()
	defer out.Unlock()
	fmt.Printf(format+"\n", args...)
}

func main() {
	opens, _ := strconv.Atoi(os.Args[2])
	size, _ := strconv.Atoi(os.Args[3])
	conn, err := net.Dial("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		say("dial-error %v", err)
		os.Exit(1)
	}

	config := yamux.DefaultConfig()
	config.LogOutput = os.Stderr
	session, err := yamux.Client(conn, config)
	if err != nil {
		say("session-error %v", err)
		os.Exit(1)
	}

	go accept(session)

	var wg sync.WaitGroup
	var failures int
	var failuresLock sync.Mutex
	start := make(chan struct{})
	for i := 0; i < opens; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			if err := openAndEcho(session, i, size); err != nil {
				failuresLock.Lock()
				failures++
				failuresLock.Unlock()
				say("open-error %d %v", i, err)
				return
			}
			say("open-ok %d", i)
		}(i)
	}
	close(start)
	wg.Wait()
	say("open-done %d", failures)

	<-session.CloseChan()
	say("session-closed")
}

func accept(session *yamux.Session) {
	for {
		stream, err := session.AcceptStream()
		if err != nil {
			return
		}
		go serve(stream)
	}
}

func serve(stream *yamux.Stream) {
	defer stream.Close()
	mode := make([]byte, 1)
	if _, err := io.ReadFull(stream, mode); err != nil {
		say("serve-error %v", err)
		return
	}
	switch mode[0] {
	case 'E':
		if _, err := io.Copy(stream, stream); err != nil {
			say("echo-error %v", err)
		}
	case 'S':
		data, err := io.ReadAll(stream)
		if err != nil {
			say("sink-error %v", err)
			return
		}
		sum := sha256.Sum256(data)
		say("sink %s %d", hex.EncodeToString(sum[:]), len(data))
	default:
		say("serve-error mode %q", mode[0])
	}
}

func openAndEcho(session *yamux.Session, i int, size int) error {
	stream, err := session.OpenStream()
	if err != nil {
		return err
	}
	payload := make([]byte, size+i)
	rand.New(rand.NewSource(int64(i))).Read(payload)
	written := make(chan error, 1)
	go func() {
		_, err := stream.Write(payload)
		written <- err
	}()

	// Read back exactly the payload before closing: this yamux (Debian's 2019 snapshot) ends
	// reads at once on a stream closed locally, so Close is no half-close here.
	echoed := make([]byte, len(payload))
	if _, err := io.ReadFull(stream, echoed); err != nil {
		return fmt.Errorf("reading the echo: %v", err)
	}
	if err := <-written; err != nil {
		return fmt.Errorf("writing: %v", err)
	}
	if !bytes.Equal(payload, echoed) {
		return fmt.Errorf("the echo of %d bytes differs", len(payload))
	}
	if err := stream.Close(); err != nil {
		return fmt.Errorf("closing: %v", err)
	}
	if rest, err := io.ReadAll(stream); err != nil || len(rest) != 0 {
		return fmt.Errorf("after the echo: %d more bytes, %v", len(rest), err)
	}
	return nil
}
