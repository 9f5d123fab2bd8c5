package slack

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"bridge/bridge"
	"bridge/sinks/internal/sinktest"
)

// fieldErrors splits a joined validation error into "field: message" lines.
func fieldErrors(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range bridge.SplitErrors(err) {
		f, msg, ok := bridge.AsFieldError(e)
		if !ok {
			out = append(out, "?: "+e.Error())
			continue
		}
		out = append(out, f+": "+msg)
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		fields  []string // the keys with problems
		apiURL  string
		wantRPS float64
	}{
		{name: "token", yaml: "token: xoxb-1", apiURL: DefaultAPIURL, wantRPS: 1},
		{name: "webhook", yaml: "webhook_url: https://hooks.slack.com/services/T/B/X", apiURL: DefaultAPIURL, wantRPS: 1},
		{name: "api_url gets its slash", yaml: "token: xoxb-1\napi_url: http://127.0.0.1:9999/api", apiURL: "http://127.0.0.1:9999/api/", wantRPS: 1},
		{name: "rate limit", yaml: "token: xoxb-1\nrate_limit: {rps: 0.5}", apiURL: DefaultAPIURL, wantRPS: 0.5},
		{name: "neither", yaml: "channel: '#x'", fields: []string{"token"}},
		{name: "both", yaml: "token: xoxb-1\nwebhook_url: https://hooks.slack.com/services/T/B/X", fields: []string{"webhook_url"}},
		{name: "token with newline", yaml: "token: \"xoxb-1\\n\"", fields: []string{"token"}},
		{name: "webhook not a URL", yaml: "webhook_url: hooks.slack.com/services/T/B/X", fields: []string{"webhook_url"}},
		{name: "api_url with webhook", yaml: "webhook_url: https://hooks.slack.com/services/T/B/X\napi_url: http://x/api/", fields: []string{"api_url"}},
		{name: "api_url not a URL", yaml: "token: xoxb-1\napi_url: /api/", fields: []string{"api_url"}},
		{name: "bad rate limit", yaml: "token: xoxb-1\nrate_limit: {rps: 0, burst: 0}", fields: []string{"rate_limit.rps", "rate_limit.burst"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Type().NewConfig().(*Config)
			if err := yaml.Unmarshal([]byte(tc.yaml), cfg); err != nil {
				t.Fatal(err)
			}
			problems := fieldErrors(cfg.Validate())
			var fields []string
			for _, p := range problems {
				fields = append(fields, strings.SplitN(p, ":", 2)[0])
			}
			if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("problems %q, want problems with %q", problems, tc.fields)
			}
			for _, p := range problems {
				if strings.Contains(p, "hooks.slack.com/services/T/B/X") || strings.Contains(p, "xoxb-1") {
					t.Errorf("a secret in %q", p)
				}
			}
			if tc.fields == nil && (cfg.APIURL != tc.apiURL || cfg.RateLimit.RPS != tc.wantRPS || cfg.RateLimit.Burst != 3) {
				t.Errorf("config %+v", cfg)
			}
		})
	}
}

func TestActionValidate(t *testing.T) {
	bot := &Config{Token: "xoxb-1"}
	botDefault := &Config{Token: "xoxb-1", Channel: "#alerts"}
	hook := &Config{WebhookURL: "https://hooks.slack.com/services/T/B/X"}
	for _, tc := range []struct {
		name   string
		cfg    *Config
		action string
		fields []string
	}{
		{"complete", bot, "channel: '#secops'\ntext: hi\nthread_by: '{{ .subject }}'", nil},
		{"sink default channel", botDefault, "text: hi", nil},
		{"no channel", bot, "text: hi", []string{"channel"}},
		{"no text", bot, "channel: C1", []string{"text"}},
		{"webhook without channel", hook, "text: hi", nil},
		{"webhook thread", hook, "text: hi\nthread_by: k", []string{"thread_by"}},
		{"literal blocks", bot, "channel: C1\ntext: hi\nblocks: '[{\"type\":\"divider\"}]'", nil},
		{"bad literal blocks", bot, "channel: C1\ntext: hi\nblocks: '[{\"type\":'", []string{"blocks"}},
		{"templated blocks", bot, "channel: C1\ntext: hi\nblocks: '[{{ .data.x }}]'", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := Type().NewAction().(*Action)
			if err := yaml.Unmarshal([]byte(tc.action), a); err != nil {
				t.Fatal(err)
			}
			problems := fieldErrors(a.Validate(tc.cfg))
			var fields []string
			for _, p := range problems {
				fields = append(fields, strings.SplitN(p, ":", 2)[0])
			}
			if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("problems %q, want problems with %q", problems, tc.fields)
			}
		})
	}
}

func TestActionKeys(t *testing.T) {
	// The loader checks action keys against the yaml tags.
	n := sinktest.YAMLNode(t, "channel: x\ntext: y\nthread_by: z\nblocks: '[]'\nchanel: typo")
	problems := bridge.CheckKeys(n, &Action{})
	if len(problems) != 1 || !strings.Contains(problems[0].Msg, `"chanel"`) {
		t.Errorf("problems %+v", problems)
	}
}
