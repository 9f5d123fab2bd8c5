package bridge

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// ErrUnauthorized is what Verify returns for a missing or wrong signature or
// token. It is one error for every case, so an answer never tells a caller
// which part was wrong.
var ErrUnauthorized = errors.New("invalid or missing signature or token")

// errEmptySecret refuses to build a verifier that would accept anything.
var errEmptySecret = errors.New("empty secret: a verifier needs a non-empty secret")

// verifier checks one kind of credential on a request.
type verifier interface {
	verify(h http.Header, q url.Values, body []byte) bool
}

// hmacVerifier checks an HMAC-SHA256 signature of the raw body, sent as hex
// in one header, against every live secret (several during a rotation).
type hmacVerifier struct {
	header string
	keys   [][]byte
	macs   []sync.Pool // per key, HMACs to reuse: Reset skips hashing the key's pads again
}

func newHMACVerifier(header string, secrets []Secret) (*hmacVerifier, error) {
	if len(secrets) == 0 {
		return nil, errEmptySecret
	}
	v := &hmacVerifier{header: header}
	for _, s := range secrets {
		if s == "" {
			return nil, errEmptySecret
		}
		v.keys = append(v.keys, []byte(s.Value()))
	}
	v.macs = make([]sync.Pool, len(v.keys))
	for i, k := range v.keys {
		v.macs[i].New = func() any { return hmac.New(sha256.New, k) }
	}
	return v, nil
}

func hmacSHA256(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

// parseSignature reads a hex signature in either case, with or without a
// "sha256=" prefix (as GitHub-style senders write it).
func parseSignature(v string) ([]byte, bool) {
	v = strings.TrimSpace(v)
	if len(v) > 7 && strings.EqualFold(v[:7], "sha256=") {
		v = v[7:]
	}
	if len(v) != 2*sha256.Size {
		return nil, false
	}
	sig, err := hex.DecodeString(v)
	if err != nil {
		return nil, false
	}
	return sig, true
}

func (v *hmacVerifier) verify(h http.Header, _ url.Values, body []byte) bool {
	sig, ok := parseSignature(h.Get(v.header))
	if !ok {
		return false
	}
	match := 0
	var sum [sha256.Size]byte
	for i := range v.keys {
		// Every key is tried, so timing does not tell which secret matched.
		m := v.macs[i].Get().(hash.Hash)
		m.Reset()
		m.Write(body)
		if hmac.Equal(sig, m.Sum(sum[:0])) {
			match = 1
		}
		v.macs[i].Put(m)
	}
	return match == 1
}

// tokenVerifier checks a shared token: as "Authorization: Bearer <token>" or
// ?token=<token>, or, when the source names a token header, as that header's
// raw value (and only there).
type tokenVerifier struct {
	sum    [sha256.Size]byte // of the token: compared at a fixed length
	header string
}

func newTokenVerifier(token Secret, header string) (*tokenVerifier, error) {
	if token == "" {
		return nil, errEmptySecret
	}
	return &tokenVerifier{sum: sha256.Sum256([]byte(token.Value())), header: header}, nil
}

// equal compares a presented token with the configured one in constant time,
// also in its length (both sides are hashed first).
func (v *tokenVerifier) equal(got string) bool {
	s := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(s[:], v.sum[:]) == 1
}

func (v *tokenVerifier) verify(h http.Header, q url.Values, _ []byte) bool {
	if v.header != "" {
		vals := h.Values(v.header)
		return len(vals) == 1 && vals[0] != "" && v.equal(vals[0])
	}
	ok := false
	if auth := h.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		if t := strings.TrimSpace(auth[7:]); t != "" && v.equal(t) {
			ok = true
		}
	}
	if t := q.Get("token"); t != "" && v.equal(t) {
		ok = true
	}
	return ok
}
