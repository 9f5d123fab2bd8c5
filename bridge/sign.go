package bridge

import (
	"encoding/hex"
	"net/http"
)

// ClientAuth is how a vendor signs or authenticates the webhooks it sends:
// the inverse of a Source's Verify. `bridge send` and `bridge bench` use it
// to post payloads as the vendor would.
type ClientAuth struct {
	Vendor          string // agility, secureagentics or antly: picks the default signature header
	Secret          Secret // HMAC-SHA256 key; empty: no signature
	Token           Secret // shared token; empty: none
	TokenHeader     string // send the token raw in this header instead of as a bearer token
	SignatureHeader string // overrides the vendor's signature header
}

// ClientAuthFor returns the credentials a source expects, so a request
// signed with them passes that source's Verify. Of several secrets it signs
// with the first.
func ClientAuthFor(cfg SourceConfig) ClientAuth {
	secret := cfg.Secret
	if secret == "" && len(cfg.Secrets) > 0 {
		secret = cfg.Secrets[0]
	}
	return ClientAuth{
		Vendor:          cfg.Vendor,
		Secret:          secret,
		Token:           cfg.Token,
		TokenHeader:     cfg.TokenHeader,
		SignatureHeader: cfg.SignatureHeader,
	}
}

// Sign returns the lower-case hex HMAC-SHA256 of body under secret, as the
// vendors send it.
func Sign(secret Secret, body []byte) string {
	return hex.EncodeToString(hmacSHA256([]byte(secret.Value()), body))
}

// Apply signs and authenticates req, whose body is body, as the vendor does:
// the hex HMAC-SHA256 of body in the signature header when there is a
// secret, and the token as "Authorization: Bearer <token>" or raw in
// TokenHeader. It sets Content-Type to application/json unless set. It does
// not set the request body.
func (a ClientAuth) Apply(req *http.Request, body []byte) {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.Secret != "" {
		req.Header.Set(signatureHeaderFor(a.Vendor, a.SignatureHeader), Sign(a.Secret, body))
	}
	if a.Token != "" {
		if a.TokenHeader != "" {
			req.Header.Set(a.TokenHeader, a.Token.Value())
		} else {
			req.Header.Set("Authorization", "Bearer "+a.Token.Value())
		}
	}
}
