// Command wrkevents writes pre-signed unique webhook events for wrk
// (scripts/wrk-post.lua), so that a load tool other than `bridge bench`
// posts the same events: the payloads of loadgen.Bodies, each signed with
// the source's secret as the vendor signs it.
//
//	wrkevents -vendor secureagentics -secret S -n 200000 -files 1 [-random-ids] OUT
//
// writes OUT.1 ... OUT.FILES (one a wrk thread), the events dealt out in
// turn. A file's first line is the signature header's name; each further
// line is one event: the signature, a space, and the body (a JSON object on
// one line).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"

	"bridge/bridge"
	"bridge/loadgen"
)

func main() {
	vendor := flag.String("vendor", bridge.VendorSecureagentics, "the vendor whose events and signature to make")
	secret := flag.String("secret", "", "the source's HMAC secret (required)")
	n := flag.Int("n", 100000, "events to write, over all files")
	files := flag.Int("files", 1, "files to deal the events into: one per wrk thread")
	randomIDs := flag.Bool("random-ids", false, "ids in no order, as vendors' UUIDs are (default: numbered in turn, as bridge bench posts them)")
	flag.Parse()
	if flag.NArg() != 1 || *secret == "" || *n < 1 || *files < 1 {
		fmt.Fprintln(os.Stderr, "usage: wrkevents -secret S [-vendor V] [-n N] [-files K] OUT")
		os.Exit(2)
	}
	gen := loadgen.Bodies
	if *randomIDs {
		gen = loadgen.RandomIDBodies
	}
	if err := write(flag.Arg(0), *vendor, bridge.Secret(*secret), *n, *files, gen); err != nil {
		fmt.Fprintln(os.Stderr, "wrkevents:", err)
		os.Exit(1)
	}
}

func write(out, vendor string, secret bridge.Secret, n, files int, gen func([]byte, string, int) ([][]byte, error)) error {
	bodies, err := gen(nil, vendor, n)
	if err != nil {
		return err
	}
	auth := bridge.ClientAuth{Vendor: vendor, Secret: secret}
	header := signatureHeader(auth)
	for k := range files {
		f, err := os.Create(fmt.Sprintf("%s.%d", out, k+1))
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		fmt.Fprintln(w, header)
		for i := k; i < len(bodies); i += files {
			fmt.Fprintf(w, "%s %s\n", bridge.Sign(secret, bodies[i]), bodies[i])
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// signatureHeader is the header auth puts its signature in.
func signatureHeader(auth bridge.ClientAuth) string {
	req := &http.Request{Header: http.Header{"Content-Type": {"application/json"}}}
	auth.Apply(req, nil)
	for name := range req.Header {
		if name != "Content-Type" {
			return name
		}
	}
	return ""
}
