package bridge

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// sourceProblems returns field: message for every problem Validate reports.
func sourceProblems(t *testing.T, cfg SourceConfig) []string {
	t.Helper()
	err := cfg.Validate()
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range SplitErrors(err) {
		field, msg, ok := AsFieldError(e)
		if !ok {
			t.Errorf("problem %q is not a FieldError", e)
		}
		out = append(out, field+": "+msg)
	}
	return out
}

func TestSourceConfigValidate(t *testing.T) {
	antly := func() *AntlyConfig {
		return &AntlyConfig{
			APIURL: "https://antly.example/api/jql", AccessToken: "oauth-secret-value", Prefix: "Bridge",
			WebhookURL: "https://bridge.example.com/webhooks/antly",
			Triggers:   []string{"profile.Customer:create", "profile.Customer:update"},
		}
	}
	tests := []struct {
		name string
		cfg  SourceConfig
		want []string // field prefixes of the expected problems, in order
	}{
		{"secret", SourceConfig{Name: "sa", Vendor: VendorSecureagentics, Secret: "s3cr3t-value"}, nil},
		{"secrets", SourceConfig{Name: "sa", Vendor: VendorSecureagentics, Secrets: []Secret{"old-secret-value", "new-secret-value"}}, nil},
		{"token", SourceConfig{Name: "agility", Vendor: VendorAgility, Token: "tok-secret-value"}, nil},
		{"insecure", SourceConfig{Name: "open", Vendor: VendorAgility, Insecure: true}, nil},
		{"full antly", SourceConfig{Name: "antly", Vendor: VendorAntly, Token: "tok-secret-value", TokenHeader: "X-Antly-Token",
			Severity: `type endsWith ":delete" ? "medium" : "info"`, RateLimit: &RateLimit{RPS: 50, Burst: 100}, Antly: antly()}, nil},
		{"secret and token", SourceConfig{Name: "x", Vendor: VendorAgility, Secret: "s3cr3t-value", Token: "tok-secret-value", SignatureHeader: "X-Hub-Signature-256"}, nil},
		{"no name", SourceConfig{Vendor: VendorAgility, Token: "t"}, []string{"name:"}},
		{"bad name", SourceConfig{Name: "a/b", Vendor: VendorAgility, Token: "t"}, []string{"name:"}},
		{"no vendor", SourceConfig{Name: "x", Token: "t"}, []string{"vendor: required"}},
		{"unknown vendor", SourceConfig{Name: "x", Vendor: "crowdstrike", Token: "t"}, []string{`vendor: unknown vendor "crowdstrike"`}},
		{"no credentials", SourceConfig{Name: "x", Vendor: VendorAgility}, []string{"secret: the source has no secret"}},
		{"secret and secrets", SourceConfig{Name: "x", Vendor: VendorAgility, Secret: "a-secret-value", Secrets: []Secret{"b-secret-value"}}, []string{"secrets: set either"}},
		{"empty entry in secrets", SourceConfig{Name: "x", Vendor: VendorAgility, Secrets: []Secret{"a-secret-value", ""}}, []string{"secrets: entry 2 is empty"}},
		{"token_header without token", SourceConfig{Name: "x", Vendor: VendorAntly, Secret: "a-secret-value", TokenHeader: "X-Antly-Token"}, []string{"token_header: set without token"}},
		{"bad token_header", SourceConfig{Name: "x", Vendor: VendorAntly, Token: "t", TokenHeader: "X Antly"}, []string{"token_header:"}},
		{"signature_header without secret", SourceConfig{Name: "x", Vendor: VendorAntly, Token: "t", SignatureHeader: "X-Sig"}, []string{"signature_header: set without"}},
		{"bad severity syntax", SourceConfig{Name: "x", Vendor: VendorAntly, Token: "t", Severity: `type ==`}, []string{"severity:"}},
		{"unknown field in severity", SourceConfig{Name: "x", Vendor: VendorAntly, Token: "t", Severity: `typo == "x" ? "high" : "low"`}, []string{"severity:"}},
		{"severity not a string", SourceConfig{Name: "x", Vendor: VendorAntly, Token: "t", Severity: `type == "x"`}, []string{"severity:"}},
		{"severity literal typo", SourceConfig{Name: "x", Vendor: VendorAntly, Token: "t", Severity: `type == "x" ? "hgih" : "info"`}, []string{`severity: "hgih" is not a severity`}},
		{"rate limit", SourceConfig{Name: "x", Vendor: VendorAntly, Token: "t", RateLimit: &RateLimit{RPS: 0, Burst: -1}}, []string{"rate_limit.rps:", "rate_limit.burst:"}},
		{"antly on other vendor", SourceConfig{Name: "x", Vendor: VendorAgility, Token: "t", Antly: antly()}, []string{"antly: only sources"}},
		{"antly empty", SourceConfig{Name: "x", Vendor: VendorAntly, Token: "t", Antly: &AntlyConfig{Triggers: []string{"a", "", "a"}}},
			[]string{"antly.api_url: required", "antly.access_token: required", "antly.webhook_url: required", "antly.triggers: entry 2", `antly.triggers: "a" is listed twice`}},
		{"antly bad urls", SourceConfig{Name: "x", Vendor: VendorAntly, Token: "t", Antly: &AntlyConfig{APIURL: "antly.example/api", AccessToken: "a", WebhookURL: "ftp://x/y", Triggers: []string{"a"}}},
			[]string{"antly.api_url:", "antly.webhook_url:"}},
		{"everything wrong", SourceConfig{Vendor: "nope", TokenHeader: "X-T", RateLimit: &RateLimit{}},
			[]string{"name:", "vendor:", "secret:", "token_header:", "rate_limit.rps:", "rate_limit.burst:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sourceProblems(t, tt.cfg)
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d: %q", strings.Join(got, "\n"), len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d = %q, want prefix %q", i, got[i], tt.want[i])
				}
			}
			_, err := NewSource(tt.cfg)
			if (err == nil) != (len(tt.want) == 0) {
				t.Errorf("NewSource error = %v, want error: %v", err, len(tt.want) > 0)
			}
		})
	}
}

func TestSourceConfigValidateLeaksNoSecret(t *testing.T) {
	secrets := []string{"sup3r-s3cret-hmac", "sup3r-s3cret-token", "sup3r-s3cret-oauth", "sup3r-s3cret-rotated"}
	cfgs := []SourceConfig{
		{Vendor: "bogus", Secret: Secret(secrets[0]), Secrets: []Secret{Secret(secrets[3]), ""}, Token: Secret(secrets[1]), TokenHeader: "bad header",
			SignatureHeader: "bad header", Severity: "nonsense ==", RateLimit: &RateLimit{},
			Antly: &AntlyConfig{AccessToken: Secret(secrets[2]), APIURL: "::", WebhookURL: "x"}},
	}
	for _, cfg := range cfgs {
		err := cfg.Validate()
		if err == nil {
			t.Fatal("want problems")
		}
		_, nerr := NewSource(cfg)
		text := err.Error() + nerr.Error() + fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg) + fmt.Sprintf("%v", ClientAuthFor(cfg))
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("secret %q leaked into: %s", s, text)
			}
		}
	}
}

func TestNewSourceKeepsConfig(t *testing.T) {
	cfg := SourceConfig{Name: "sa", Vendor: VendorSecureagentics, Secret: "k", Line: 12}
	s := mustSource(t, cfg)
	if got := s.Config(); got.Name != "sa" || got.Line != 12 || s.Name() != "sa" {
		t.Errorf("Config() = %+v", got)
	}
	if _, err := NewSource(SourceConfig{Name: "x", Vendor: VendorAgility}); err == nil {
		t.Error("a source without credentials was built")
	} else if errors.Is(err, ErrUnauthorized) {
		t.Error("config error should not be ErrUnauthorized")
	}
}

func TestSeverityErrorIsOneLine(t *testing.T) {
	for _, src := range []string{`type ==`, `typo == "x" ? "high" : "low"`, `type == "x"`} {
		_, err := compileSeverity(src)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q", src, err)
		}
		t.Log(err)
	}
}
