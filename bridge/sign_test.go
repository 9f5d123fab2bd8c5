package bridge

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestClientAuthRoundTrip checks that a request signed with ClientAuthFor a
// source passes that source's Verify, for every way of authenticating.
func TestClientAuthRoundTrip(t *testing.T) {
	body := readExample(t, VendorSecureagentics, "alert.triggered.json")
	cfgs := []SourceConfig{
		{Name: "sa", Vendor: VendorSecureagentics, Secret: "s1"},
		{Name: "sa-rot", Vendor: VendorSecureagentics, Secrets: []Secret{"s1", "s2"}},
		{Name: "ag-sig", Vendor: VendorAgility, Secret: "s1"},
		{Name: "ag-custom", Vendor: VendorAgility, Secret: "s1", SignatureHeader: "X-Hub-Signature-256"},
		{Name: "ag-bearer", Vendor: VendorAgility, Token: "t1"},
		{Name: "an-header", Vendor: VendorAntly, Token: "t1", TokenHeader: "X-Antly-Token"},
		{Name: "sa-both", Vendor: VendorSecureagentics, Secret: "s1", Token: "t1"},
		{Name: "an-both-header", Vendor: VendorAntly, Secret: "s1", Token: "t1", TokenHeader: "X-Antly-Token"},
		{Name: "open", Vendor: VendorAntly, Insecure: true},
	}
	for _, cfg := range cfgs {
		t.Run(cfg.Name, func(t *testing.T) {
			src := mustSource(t, cfg)
			req := httptest.NewRequest(http.MethodPost, "/webhooks/"+cfg.Name, bytes.NewReader(body))
			ClientAuthFor(cfg).Apply(req, body)
			if err := src.Verify(req.Header, req.URL.Query(), body); err != nil {
				t.Errorf("Verify after Apply: %v", err)
			}
			if ct := req.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cfg.Secret != "" || cfg.Token != "" {
				if err := src.Verify(req.Header, req.URL.Query(), append(bytes.Clone(body), ' ')); err == nil && cfg.Secret != "" {
					t.Error("a changed body verified")
				}
				if err := src.Verify(http.Header{}, nil, body); err == nil {
					t.Error("an unsigned request verified")
				}
			}
		})
	}
}

func TestClientAuthApplyHeaders(t *testing.T) {
	body := []byte(`{"id":"1","type":"x"}`)
	req, _ := http.NewRequest(http.MethodPost, "http://bridge.example/webhooks/sa", nil)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	ClientAuth{Vendor: VendorSecureagentics, Secret: "k", Token: "t"}.Apply(req, body)
	if got, want := req.Header.Get("X-Secureagentics-Signature"), Sign("k", body); got != want {
		t.Errorf("signature = %q, want %q", got, want)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer t" {
		t.Errorf("Authorization = %q", got)
	}
	if got := req.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type was replaced: %q", got)
	}
	req, _ = http.NewRequest(http.MethodPost, "http://bridge.example/webhooks/an", nil)
	ClientAuth{Vendor: VendorAntly, Token: "t", TokenHeader: "X-Antly-Token"}.Apply(req, body)
	if req.Header.Get("X-Antly-Token") != "t" || req.Header.Get("Authorization") != "" || req.Header.Get("X-Signature") != "" {
		t.Errorf("headers = %v", req.Header)
	}
}

func TestClientAuthForFirstSecret(t *testing.T) {
	a := ClientAuthFor(SourceConfig{Vendor: VendorSecureagentics, Secrets: []Secret{"first", "second"}})
	if a.Secret != "first" || a.Vendor != VendorSecureagentics {
		t.Errorf("ClientAuthFor = %+v", a)
	}
}
