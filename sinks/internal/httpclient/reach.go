package httpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// Unreachable reports whether err is a failure to reach a service at all
// (the name does not resolve, the connection is refused or times out, the
// TLS handshake fails) rather than an answer from it, and says why in a few
// words that hold no URL (a URL may carry a secret): "connection refused",
// "no such host". A check tells an operator "cannot reach the host" for
// these, and keeps "the token is refused" for a 401 or 403.
func Unreachable(err error) (cause string, ok bool) {
	if err == nil {
		return "", false
	}
	var dns *net.DNSError
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	var op *net.OpError
	var ue *url.Error
	switch {
	case errors.As(err, &dns):
		// The caller names the host: the cause need not.
		if dns.IsNotFound {
			return "no such host", true
		}
		if dns.IsTimeout {
			return "looking the name up timed out", true
		}
		return "cannot look the name up: " + dns.Err, true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed before an answer came", true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to the host", true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out", true
	case errors.As(err, &cve), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return "its TLS certificate is not trusted: " + certText(err), true
	case errors.As(err, &rh):
		return "it does not speak TLS there (is the address http:// rather than https://?)", true
	case errors.As(err, &op):
		return strings.TrimPrefix(op.Err.Error(), "connect: "), true
	case errors.As(err, &ue):
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timed out", true
		}
		return ue.Err.Error(), true
	}
	return "", false
}

// certText is the certificate error's own words.
func certText(err error) string {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) && cve.Err != nil {
		return cve.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// Host returns the host (and port, when there is one) of rawURL, for
// messages: never its path or query, which may carry a secret.
func Host(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "the service"
	}
	return u.Host
}
