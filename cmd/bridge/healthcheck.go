package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// defaultHealthURL is where a bridge listening on the default port answers
// its health check.
const defaultHealthURL = "http://127.0.0.1:8080/healthz"

func healthcheckCommand() *cobra.Command {
	var url string
	var timeout time.Duration
	var insecure bool
	c := &cobra.Command{
		Use:   "healthcheck [--url URL] [--timeout D] [--insecure]",
		Short: "GET URL (http://127.0.0.1:8080/healthz), exit 0 on 200",
		Long: `GET a health URL and exit 0 when it answers 200, 1 otherwise: the container
image's HEALTHCHECK, since a distroless image has no curl. Redirects are
not followed.`,
		Example:           "  bridge healthcheck --url http://127.0.0.1:8080/readyz",
		Args:              noArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(cmdHealthcheck(url, timeout, insecure, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	c.Flags().StringVar(&url, "url", defaultHealthURL, "the `URL` to GET; 200 means healthy")
	c.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after `D`")
	c.Flags().BoolVar(&insecure, "insecure", false, "do not verify the TLS certificate (https://127.0.0.1 with a certificate for the public name)")
	return c
}

// cmdHealthcheck GETs a health URL and exits 0 on 200, 1 otherwise: the
// container image's HEALTHCHECK, since a distroless image has no curl.
func cmdHealthcheck(url string, timeout time.Duration, insecure bool, stdout, stderr io.Writer) int {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	client := &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirects are not followed")
		},
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
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
		return fail(stderr, "healthcheck: %s answered %s", url, resp.Status)
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, resp.Status)
	return 0
}
