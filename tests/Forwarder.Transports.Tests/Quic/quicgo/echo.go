// The quic-go peer of the QUIC interop tests (Debian's golang-github-lucas-clemente-quic-go-dev).
//
//	echo server <listen host:port> <ca.pem> <cert.pem> <key.pem>
//	    listens, prints "listening <port>", echoes every stream of every connection
//	    and prints "closed <code>" when a peer closes a connection.
//	echo client <host:port> <ca.pem> <server name> <streams> <bytes>
//	    opens the streams at once, sends random bytes on each and checks the echo; prints
//	    "stream-ok <i>" or "error ...", then closes the connection with code 0 and prints "done".
//
// Windows are kept small (64 KiB per stream, 128 KiB per connection) so the payloads run past them.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/lucas-clemente/quic-go"
)

const alpn = "forwarder-test"

func main() {
	var err error
	switch os.Args[1] {
	case "server":
		err = serve(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
	case "client":
		streams, _ := strconv.Atoi(os.Args[5])
		size, _ := strconv.Atoi(os.Args[6])
		err = dial(os.Args[2], os.Args[3], os.Args[4], streams, size)
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
}

func config() *quic.Config {
	return &quic.Config{
		InitialStreamReceiveWindow:     64 * 1024,
		MaxStreamReceiveWindow:         64 * 1024,
		InitialConnectionReceiveWindow: 128 * 1024,
		MaxConnectionReceiveWindow:     128 * 1024,
		MaxIdleTimeout:                 30 * time.Second,
		HandshakeIdleTimeout:           10 * time.Second,
	}
}

func pool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("no CA certificate in " + caFile)
	}
	return roots, nil
}

func serve(address, caFile, certFile, keyFile string) error {
	certificate, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	if _, err = pool(caFile); err != nil {
		return err
	}
	listener, err := quic.ListenAddr(address, &tls.Config{
		Certificates: []tls.Certificate{certificate},
		NextProtos:   []string{alpn},
		MinVersion:   tls.VersionTLS13,
	}, config())
	if err != nil {
		return err
	}
	fmt.Println("listening", listener.Addr().(*net.UDPAddr).Port)
	for {
		connection, err := listener.Accept(context.Background())
		if err != nil {
			return err
		}
		go echoConnection(connection)
	}
}

func echoConnection(connection quic.Connection) {
	for {
		stream, err := connection.AcceptStream(context.Background())
		if err != nil {
			var application *quic.ApplicationError
			if errors.As(err, &application) {
				fmt.Println("closed", application.ErrorCode)
			} else {
				fmt.Println("error accepting a stream:", err)
			}
			return
		}
		go func() {
			if _, err := io.Copy(stream, stream); err != nil {
				fmt.Println("error echoing stream", stream.StreamID(), err)
			}
			stream.Close()
		}()
	}
}

func dial(address, caFile, serverName string, streams, size int) error {
	roots, err := pool(caFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	connection, err := quic.DialAddrContext(ctx, address, &tls.Config{
		RootCAs:    roots,
		ServerName: serverName,
		NextProtos: []string{alpn},
		MinVersion: tls.VersionTLS13,
	}, config())
	if err != nil {
		return err
	}
	var wait sync.WaitGroup
	failures := make(chan error, streams)
	for i := 0; i < streams; i++ {
		wait.Add(1)
		go func(i int) {
			defer wait.Done()
			if err := exchange(ctx, connection, size+i); err != nil {
				failures <- fmt.Errorf("stream %d: %w", i, err)
				return
			}
			fmt.Println("stream-ok", i)
		}(i)
	}
	wait.Wait()
	close(failures)
	for err := range failures {
		return err
	}
	err = connection.CloseWithError(0, "done")
	fmt.Println("done")
	return err
}

func exchange(ctx context.Context, connection quic.Connection, size int) error {
	stream, err := connection.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	payload := make([]byte, size)
	if _, err = rand.Read(payload); err != nil {
		return err
	}
	sent := make(chan error, 1)
	go func() {
		_, err := stream.Write(payload)
		if err == nil {
			err = stream.Close()
		}
		sent <- err
	}()
	echoed, err := io.ReadAll(stream)
	if err != nil {
		return err
	}
	if err = <-sent; err != nil {
		return err
	}
	if !bytes.Equal(payload, echoed) {
		return fmt.Errorf("%d bytes sent, %d different ones echoed", size, len(echoed))
	}
	return nil
}
