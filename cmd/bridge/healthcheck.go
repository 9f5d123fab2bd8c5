package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// defaultHealthURL is where a bridge listening on the default port answers
// its health check.
const defaultHealthURL = "http://127.0.0.1:8080/healthz"

// cmdHealthcheck GETs a health URL and exits 0 on 200, 1 otherwise: the
// container image's HEALTHCHECK, since a distroless image has no curl.
func cmdHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bridge healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", defaultHealthURL, "the URL to GET; 200 means healthy")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	insecure := fs.Bool("insecure", false, "do not verify the TLS certificate (https://127.0.0.1 with a certificate for the public name)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: bridge healthcheck [--url URL] [--timeout D] [--insecure]")
		return 2
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if *insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	client := &http.Client{
		Transport: tr,
		Timeout:   *timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirects are not followed")
		},
	}
	req, err := http.NewRequest(http.MethodGet, *url, nil)
	if err != nil {
		return fail(stderr, "healthcheck: %v", err)
	}
	req.Header.Set("User-Agent", "bridge/"+version+" healthcheck")
	resp, err := client.Do(req)
	if err != nil {
		return fail(stderr, "healthcheck: %v", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(stderr, "healthcheck: %s answered %s", *url, resp.Status)
	}
	fmt.Fprintf(stdout, "%s: %s\n", *url, resp.Status)
	return 0
}
