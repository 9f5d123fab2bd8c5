package bridge

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func hexHMAC(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// TestSignatureVectorFromOpenSSL checks Verify against a signature computed
// with openssl (testdata/signature/README says how).
func TestSignatureVectorFromOpenSSL(t *testing.T) {
	dir := filepath.Join("testdata", "signature")
	body, err := os.ReadFile(filepath.Join(dir, "body.json"))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(filepath.Join(dir, "secret.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(dir, "signature.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(sig))
	if got := Sign(Secret(secret), body); got != want {
		t.Errorf("Sign = %s, openssl says %s", got, want)
	}
	src := mustSource(t, SourceConfig{Name: "sa", Vendor: VendorSecureagentics, Secret: Secret(secret)})
	h := http.Header{}
	h.Set("X-Secureagentics-Signature", want)
	if err := src.Verify(h, nil, body); err != nil {
		t.Errorf("Verify of the openssl vector: %v", err)
	}
	if err := src.Verify(h, nil, bytes.TrimSpace(body)); err != ErrUnauthorized {
		t.Errorf("Verify of a changed body = %v, want ErrUnauthorized", err)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"alert.triggered"}`)
	sigA := hexHMAC("secret-a", body)
	sigB := hexHMAC("secret-b", body)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	sa := SourceConfig{Name: "sa", Vendor: VendorSecureagentics, Secret: "secret-a"}
	rotating := SourceConfig{Name: "sa", Vendor: VendorSecureagentics, Secrets: []Secret{"secret-a", "secret-b"}}
	agilitySecret := SourceConfig{Name: "ag", Vendor: VendorAgility, Secret: "secret-a"}
	customHeader := SourceConfig{Name: "ag", Vendor: VendorAgility, Secret: "secret-a", SignatureHeader: "X-Hub-Signature-256"}
	bearer := SourceConfig{Name: "ag", Vendor: VendorAgility, Token: "tok-123"}
	header := SourceConfig{Name: "an", Vendor: VendorAntly, Token: "tok-123", TokenHeader: "X-Antly-Token"}
	both := SourceConfig{Name: "sa", Vendor: VendorSecureagentics, Secret: "secret-a", Token: "tok-123"}
	open := SourceConfig{Name: "open", Vendor: VendorAntly, Insecure: true}
	insecureWithToken := SourceConfig{Name: "open", Vendor: VendorAntly, Insecure: true, Token: "tok-123"}

	tests := []struct {
		name string
		cfg  SourceConfig
		h    http.Header
		q    string
		ok   bool
	}{
		{"hmac lower hex", sa, hdr("X-Secureagentics-Signature", sigA), "", true},
		{"hmac upper hex", sa, hdr("X-Secureagentics-Signature", strings.ToUpper(sigA)), "", true},
		{"hmac sha256= prefix", sa, hdr("X-Secureagentics-Signature", "sha256="+sigA), "", true},
		{"hmac surrounding space", sa, hdr("X-Secureagentics-Signature", " "+sigA+" "), "", true},
		{"hmac missing", sa, hdr(), "", false},
		{"hmac empty", sa, hdr("X-Secureagentics-Signature", ""), "", false},
		{"hmac wrong", sa, hdr("X-Secureagentics-Signature", sigB), "", false},
		{"hmac truncated", sa, hdr("X-Secureagentics-Signature", sigA[:62]), "", false},
		{"hmac not hex", sa, hdr("X-Secureagentics-Signature", strings.Repeat("zz", 32)), "", false},
		{"hmac base64", sa, hdr("X-Secureagentics-Signature", "jR3mD5s3ZtWl0n8r1t0p8dW3q3e3XkQxV0m7cQ0y8zE="), "", false},
		{"hmac in the wrong header", sa, hdr("X-Signature", sigA), "", false},
		{"rotation old", rotating, hdr("X-Secureagentics-Signature", sigA), "", true},
		{"rotation new", rotating, hdr("X-Secureagentics-Signature", sigB), "", true},
		{"rotation neither", rotating, hdr("X-Secureagentics-Signature", hexHMAC("secret-c", body)), "", false},
		{"other vendor X-Signature", agilitySecret, hdr("X-Signature", sigA), "", true},
		{"other vendor wrong header", agilitySecret, hdr("X-Secureagentics-Signature", sigA), "", false},
		{"signature_header", customHeader, hdr("X-Hub-Signature-256", "sha256="+sigA), "", true},
		{"signature_header ignores default", customHeader, hdr("X-Signature", sigA), "", false},
		{"bearer", bearer, hdr("Authorization", "Bearer tok-123"), "", true},
		{"bearer lower-case scheme", bearer, hdr("Authorization", "bearer tok-123"), "", true},
		{"bearer wrong", bearer, hdr("Authorization", "Bearer tok-124"), "", false},
		{"bearer prefix of token", bearer, hdr("Authorization", "Bearer tok-12"), "", false},
		{"basic scheme", bearer, hdr("Authorization", "Basic tok-123"), "", false},
		{"bearer empty", bearer, hdr("Authorization", "Bearer "), "", false},
		{"query", bearer, hdr(), "token=tok-123", true},
		{"query wrong", bearer, hdr(), "token=nope", false},
		{"query wrong, bearer right", bearer, hdr("Authorization", "Bearer tok-123"), "token=nope", true},
		{"token missing", bearer, hdr(), "", false},
		{"token header", header, hdr("X-Antly-Token", "tok-123"), "", true},
		{"token header wrong", header, hdr("X-Antly-Token", "tok-1234"), "", false},
		{"token header missing", header, hdr(), "", false},
		{"token header is not bearer", header, hdr("Authorization", "Bearer tok-123"), "", false},
		{"token header is not query", header, hdr(), "token=tok-123", false},
		{"token header twice", header, hdr("X-Antly-Token", "tok-123", "X-Antly-Token", "tok-123"), "", false},
		{"both right", both, hdr("X-Secureagentics-Signature", sigA, "Authorization", "Bearer tok-123"), "", true},
		{"both, signature only", both, hdr("X-Secureagentics-Signature", sigA), "", false},
		{"both, token only", both, hdr("Authorization", "Bearer tok-123"), "", false},
		{"both, bad signature", both, hdr("X-Secureagentics-Signature", sigB, "Authorization", "Bearer tok-123"), "", false},
		{"insecure accepts anything", open, hdr(), "", true},
		{"insecure with token checks it", insecureWithToken, hdr(), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := mustSource(t, tt.cfg)
			q, err := url.ParseQuery(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			err = src.Verify(tt.h, q, body)
			if tt.ok && err != nil {
				t.Errorf("Verify = %v, want nil", err)
			}
			if !tt.ok && err != ErrUnauthorized {
				t.Errorf("Verify = %v, want ErrUnauthorized", err)
			}
		})
	}
}

// TestVerifyErrorSaysNothing checks that a missing and a wrong credential get
// the same error, which carries neither the expected signature nor the secret.
func TestVerifyErrorSaysNothing(t *testing.T) {
	body := []byte(`{"event":"x"}`)
	src := mustSource(t, SourceConfig{Name: "s", Vendor: VendorAntly, Secret: "the-secret", Token: "the-token"})
	missing := src.Verify(http.Header{}, nil, body)
	h := http.Header{}
	h.Set("X-Signature", strings.Repeat("0", 64))
	h.Set("Authorization", "Bearer wrong")
	wrong := src.Verify(h, nil, body)
	if missing != wrong || missing != ErrUnauthorized {
		t.Fatalf("missing: %v, wrong: %v", missing, wrong)
	}
	expected := hexHMAC("the-secret", body)
	for _, s := range []string{expected, "the-secret", "the-token"} {
		if strings.Contains(wrong.Error(), s) {
			t.Errorf("error %q contains %q", wrong, s)
		}
	}
}

func TestVerifierRefusesEmptySecret(t *testing.T) {
	if _, err := newHMACVerifier("X-Signature", []Secret{""}); err == nil {
		t.Error("hmac verifier built with an empty secret")
	}
	if _, err := newHMACVerifier("X-Signature", nil); err == nil {
		t.Error("hmac verifier built without secrets")
	}
	if _, err := newHMACVerifier("X-Signature", []Secret{"ok", ""}); err == nil {
		t.Error("hmac verifier built with an empty second secret")
	}
	if _, err := newTokenVerifier("", ""); err == nil {
		t.Error("token verifier built with an empty token")
	}
}

// FuzzVerify checks that no header, query or body makes Verify panic or
// accept a request without the right credentials.
func FuzzVerify(f *testing.F) {
	for _, name := range []string{"alert.triggered.json", "policy.violated.json"} {
		body := readExample(f, VendorSecureagentics, name)
		f.Add(body, hexHMAC("fuzz-secret", body), "Bearer fuzz-token", "token=fuzz-token")
	}
	f.Add([]byte(`{}`), "sha256=", "bearer ", "token=")
	f.Add([]byte(nil), "", "", "%zz")
	srcs := []*Source{
		mustSource(f, SourceConfig{Name: "a", Vendor: VendorSecureagentics, Secrets: []Secret{"fuzz-secret", "other-secret"}}),
		mustSource(f, SourceConfig{Name: "b", Vendor: VendorAgility, Token: "fuzz-token"}),
		mustSource(f, SourceConfig{Name: "c", Vendor: VendorAntly, Token: "fuzz-token", TokenHeader: "X-Antly-Token"}),
		mustSource(f, SourceConfig{Name: "d", Vendor: VendorSecureagentics, Secret: "fuzz-secret", Token: "fuzz-token"}),
	}
	f.Fuzz(func(t *testing.T, body []byte, sig, auth, rawQuery string) {
		h := http.Header{}
		h.Set("X-Secureagentics-Signature", sig)
		h.Set("Authorization", auth)
		h.Set("X-Antly-Token", auth)
		q, _ := url.ParseQuery(rawQuery)
		sigOK := false
		if b, ok := parseSignature(sig); ok {
			sigOK = hmac.Equal(b, hmacSHA256([]byte("fuzz-secret"), body)) || hmac.Equal(b, hmacSHA256([]byte("other-secret"), body))
		}
		// The scheme is case-insensitive (RFC 7235); the token is not.
		bearerOK := len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") && strings.TrimSpace(auth[7:]) == "fuzz-token"
		tokenOK := bearerOK || q.Get("token") == "fuzz-token"
		want := []bool{sigOK, tokenOK, auth == "fuzz-token", sigOK && tokenOK}
		for i, src := range srcs {
			err := src.Verify(h, q, body)
			if err != nil && err != ErrUnauthorized {
				t.Fatalf("source %d: error %v", i, err)
			}
			if (err == nil) != want[i] {
				t.Fatalf("source %d: accepted = %v, want %v (sig %q auth %q query %q)", i, err == nil, want[i], sig, auth, rawQuery)
			}
		}
	})
}
