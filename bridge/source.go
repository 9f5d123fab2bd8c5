package bridge

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Vendors the bridge receives webhooks from, as written in a source's
// `vendor:` key and carried in Event.Vendor.
const (
	VendorAgility        = "agility"
	VendorSecureagentics = "secureagentics"
	VendorAntly          = "antly"
)

// Default signature headers (SPEC 4.2): Secureagentics names its own, every
// other vendor signed with a `secret` uses X-Signature unless the source's
// signature_header says otherwise.
const (
	SecureagenticsSignatureHeader = "X-Secureagentics-Signature"
	DefaultSignatureHeader        = "X-Signature"
)

// sourceNameRE is what a source name may look like: it is a URL path segment
// (POST /webhooks/{source}) and a metrics label.
var sourceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// headerNameRE is an HTTP header field name (RFC 9110 token).
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// knownVendor reports whether v is one of the vendors the bridge can normalize.
func knownVendor(v string) bool {
	switch v {
	case VendorAgility, VendorSecureagentics, VendorAntly:
		return true
	}
	return false
}

// signatureHeaderFor is the header a vendor's HMAC signature travels in when
// the source does not name one.
func signatureHeaderFor(vendor, configured string) string {
	if configured != "" {
		return configured
	}
	if vendor == VendorSecureagentics {
		return SecureagenticsSignatureHeader
	}
	return DefaultSignatureHeader
}

// Validate reports every problem of a source entry, each a FieldError naming
// the key to fix, joined with errors.Join; nil when the entry is usable.
// Uniqueness of names across sources is the loader's to check. No message
// ever contains a secret or token.
func (c *SourceConfig) Validate() error {
	var errs []error
	switch {
	case c.Name == "":
		errs = append(errs, FieldError("name", "required"))
	case !sourceNameRE.MatchString(c.Name):
		errs = append(errs, FieldErrorf("name", "%q is not a valid source name (letters, digits, '.', '_' and '-', starting with a letter or digit): it is the path segment of POST /webhooks/{source}", c.Name))
	}
	switch {
	case c.Vendor == "":
		errs = append(errs, FieldErrorf("vendor", "required (one of %s, %s, %s)", VendorAgility, VendorAntly, VendorSecureagentics))
	case !knownVendor(c.Vendor):
		errs = append(errs, FieldErrorf("vendor", "unknown vendor %q (known: %s, %s, %s)", c.Vendor, VendorAgility, VendorAntly, VendorSecureagentics))
	}

	if c.Secret != "" && len(c.Secrets) > 0 {
		errs = append(errs, FieldError("secrets", "set either secret or secrets, not both (list every valid secret under secrets)"))
	}
	for i, s := range c.Secrets {
		if s == "" {
			errs = append(errs, FieldErrorf("secrets", "entry %d is empty (an empty secret would accept forged signatures)", i+1))
		}
	}
	hasSecret := c.Secret != "" || len(c.Secrets) > 0
	if !hasSecret && c.Token == "" && !c.Insecure {
		errs = append(errs, FieldError("secret", "the source has no secret, secrets or token: set one (or insecure: true to accept unauthenticated requests)"))
	}
	if c.TokenHeader != "" {
		if c.Token == "" {
			errs = append(errs, FieldError("token_header", "set without token"))
		}
		if !headerNameRE.MatchString(c.TokenHeader) {
			errs = append(errs, FieldErrorf("token_header", "%q is not a valid HTTP header name", c.TokenHeader))
		}
	}
	if c.SignatureHeader != "" {
		if !hasSecret {
			errs = append(errs, FieldError("signature_header", "set without secret or secrets"))
		}
		if !headerNameRE.MatchString(c.SignatureHeader) {
			errs = append(errs, FieldErrorf("signature_header", "%q is not a valid HTTP header name", c.SignatureHeader))
		}
	}

	if c.Severity != "" {
		if _, err := compileSeverity(c.Severity); err != nil {
			errs = append(errs, FieldError("severity", err.Error()))
		}
	}

	if rl := c.RateLimit; rl != nil {
		if !(rl.RPS > 0) {
			errs = append(errs, FieldErrorf("rate_limit.rps", "must be positive, got %v", rl.RPS))
		}
		if rl.Burst <= 0 {
			errs = append(errs, FieldErrorf("rate_limit.burst", "must be positive, got %d", rl.Burst))
		}
	}

	if a := c.Antly; a != nil {
		if c.Vendor != VendorAntly {
			errs = append(errs, FieldErrorf("antly", "only sources with vendor %s take an antly section", VendorAntly))
		}
		errs = append(errs, validateHTTPURL("antly.api_url", a.APIURL))
		if a.AccessToken == "" {
			errs = append(errs, FieldError("antly.access_token", "required"))
		}
		errs = append(errs, validateHTTPURL("antly.webhook_url", a.WebhookURL))
		if len(a.Triggers) == 0 {
			errs = append(errs, FieldError("antly.triggers", "required: list the events to subscribe to, e.g. profile.Customer:create"))
		}
		seen := map[string]bool{}
		for i, t := range a.Triggers {
			switch {
			case strings.TrimSpace(t) == "":
				errs = append(errs, FieldErrorf("antly.triggers", "entry %d is empty", i+1))
			case seen[t]:
				errs = append(errs, FieldErrorf("antly.triggers", "%q is listed twice", t))
			}
			seen[t] = true
		}
	}
	return errors.Join(errs...)
}

// validateHTTPURL checks that a required key holds an absolute http(s) URL.
func validateHTTPURL(field, raw string) error {
	if raw == "" {
		return FieldError(field, "required")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return FieldErrorf(field, "%q is not an absolute http or https URL", raw)
	}
	return nil
}

// Source is one configured source, ready to receive: its verifiers are built
// and its severity expression compiled. It is safe for concurrent use.
type Source struct {
	cfg       SourceConfig
	verifiers []verifier
	normalize func(body []byte, received time.Time) (*Event, error)
	severity  *vm.Program // nil: keep the vendor's default severity
}

// NewSource builds a Source from its config. It fails when the config does
// not validate, so a source can never be built that accepts forged requests.
func NewSource(cfg SourceConfig) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("source %q: %w", cfg.Name, err)
	}
	s := &Source{cfg: cfg}
	switch cfg.Vendor {
	case VendorAgility:
		s.normalize = normalizeAgility
	case VendorSecureagentics:
		s.normalize = normalizeSecureagentics
	case VendorAntly:
		s.normalize = normalizeAntly
	}

	secrets := cfg.Secrets
	if cfg.Secret != "" {
		secrets = []Secret{cfg.Secret}
	}
	if len(secrets) > 0 {
		v, err := newHMACVerifier(signatureHeaderFor(cfg.Vendor, cfg.SignatureHeader), secrets)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", cfg.Name, err)
		}
		s.verifiers = append(s.verifiers, v)
	}
	if cfg.Token != "" {
		v, err := newTokenVerifier(cfg.Token, cfg.TokenHeader)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", cfg.Name, err)
		}
		s.verifiers = append(s.verifiers, v)
	}
	if len(s.verifiers) == 0 && !cfg.Insecure {
		// Validate refuses this already; never fail open should it change.
		return nil, fmt.Errorf("source %q: no credentials and not insecure", cfg.Name)
	}
	if cfg.Severity != "" {
		p, err := compileSeverity(cfg.Severity)
		if err != nil {
			return nil, fmt.Errorf("source %q: severity: %w", cfg.Name, err)
		}
		s.severity = p
	}
	return s, nil
}

// Config returns the config the source was built from.
func (s *Source) Config() SourceConfig { return s.cfg }

// Name returns the source's configured name.
func (s *Source) Name() string { return s.cfg.Name }

// Normalize turns a verified request body into an Event of this source.
// Errors are *BadRequestError values saying what is wrong with the body.
//
// With a `severity:` expression the expression decides the severity; when it
// fails at run time (a missing field used in arithmetic, say) or returns
// anything but one of the five severities, the vendor's default severity is
// kept, so a faulty override never loses an event.
func (s *Source) Normalize(body []byte, received time.Time) (*Event, error) {
	ev, err := s.normalize(body, received)
	if err != nil {
		return nil, err
	}
	ev.Source = s.cfg.Name
	if s.severity != nil {
		if sev, ok := runSeverity(s.severity, ev); ok {
			ev.Severity = sev
		}
	}
	return ev, nil
}

// severityEnv is the shape of the environment severity expressions compile
// against: the Event fields rules see.
func severityEnv() map[string]any {
	return (&Event{Data: map[string]any{}}).Map()
}

// compileSeverity compiles a `severity:` expression. Its result must be a
// string; literal strings it can return must be severities, so a typo such
// as "hgih" is caught when the config is loaded.
func compileSeverity(src string) (*vm.Program, error) {
	p, err := expr.Compile(src, expr.Env(severityEnv()), expr.AsKind(reflect.String))
	if err != nil {
		// expr's message spans lines (the source, a caret); keep one.
		msg := err.Error()
		var fe *file.Error
		if errors.As(err, &fe) && fe.Message != "" {
			msg = fmt.Sprintf("%s (column %d)", fe.Message, fe.Column+1)
		}
		first, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
		return nil, errors.New(first)
	}
	for _, lit := range resultLiterals(p.Node()) {
		if !ValidSeverity(lit) {
			return nil, fmt.Errorf("%q is not a severity (use one of %s)", lit, strings.Join(Severities, ", "))
		}
	}
	return p, nil
}

// resultLiterals returns the string literals an expression may return as its
// result: the literal itself, the branches of conditionals, the fallback of ??.
func resultLiterals(n ast.Node) []string {
	switch n := n.(type) {
	case *ast.StringNode:
		return []string{n.Value}
	case *ast.ConditionalNode:
		return append(resultLiterals(n.Exp1), resultLiterals(n.Exp2)...)
	case *ast.BinaryNode:
		if n.Operator == "??" {
			return append(resultLiterals(n.Left), resultLiterals(n.Right)...)
		}
	}
	return nil
}

// runSeverity evaluates a compiled severity expression for ev. ok is false
// when it failed or returned something other than a severity.
func runSeverity(p *vm.Program, ev *Event) (sev string, ok bool) {
	defer func() {
		if recover() != nil {
			sev, ok = "", false
		}
	}()
	out, err := expr.Run(p, ev.Map())
	if err != nil {
		return "", false
	}
	s, isString := out.(string)
	if !isString || !ValidSeverity(s) {
		return "", false
	}
	return s, true
}

// Verify checks a request's signature and token as the source's config
// requires: with both secret and token configured, both must be right. It
// returns nil or ErrUnauthorized, the same error whatever was missing or
// wrong. A source with insecure: true and no credentials accepts everything.
func (s *Source) Verify(h http.Header, q url.Values, body []byte) error {
	ok := true
	for _, v := range s.verifiers {
		// Every verifier runs, so timing does not tell which one failed.
		if !v.verify(h, q, body) {
			ok = false
		}
	}
	if !ok {
		return ErrUnauthorized
	}
	return nil
}
