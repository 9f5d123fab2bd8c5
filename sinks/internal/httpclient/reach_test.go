package httpclient

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"bridge/bridge"
)

func TestUnreachable(t *testing.T) {
	get := func(err error) error {
		return &url.Error{Op: "Get", URL: "https://jira.example/rest?token=s3cret", Err: err}
	}
	for _, tc := range []struct {
		name string
		err  error
		want string // "" for not unreachable
	}{
		{"refused", get(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), "connection refused"},
		{"no such host", get(&net.OpError{Op: "dial", Err: &net.DNSError{Name: "jira.example", Err: "no such host", IsNotFound: true}}), "no such host"},
		{"dns timeout", get(&net.DNSError{Name: "jira.example", Err: "i/o timeout", IsTimeout: true}), "looking the name up timed out"},
		{"timeout", get(context.DeadlineExceeded), "timed out"},
		{"unknown CA", get(x509.UnknownAuthorityError{}), "its TLS certificate is not trusted: "},
		{"wrapped", fmt.Errorf("jira: who am I: %w", get(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})), "connection refused"},
		{"an HTTP answer", fmt.Errorf("jira: who am I: %w", bridge.HTTPStatusError(401, nil, "Unauthorized")), ""},
		{"another error", errors.New("jira: bad JSON"), ""},
		{"nil", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Unreachable(tc.err)
			if ok != (tc.want != "") || len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
				t.Errorf("Unreachable = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
	if h := Host("https://hooks.slack.com/services/T0/B0/secret"); h != "hooks.slack.com" {
		t.Errorf("Host = %q", h)
	}
}
