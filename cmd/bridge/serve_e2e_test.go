package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bridge/sinks/syslog/syslogfake"
)

// TestReloadUnderLoad rewrites the config and sends SIGHUP while events are
// being posted: every acknowledged event is stored once and delivered.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := e2eConfig(t, dir, addr, "")
	p := startBridge(t, cfg, addr)
	payloads := examplePayloads(t, 300)

	stop := make(chan struct{})
	var reloads sync.WaitGroup
	reloads.Add(1)
	go func() {
		defer reloads.Done()
		for i := 0; ; i++ {
			extra := ""
			if i%2 == 0 {
				extra = fmt.Sprintf("  - name: extra-%d\n    when: vendor == \"antly\"\n    actions:\n      - sink: archive\n", i)
			}
			os.WriteFile(cfg, []byte(e2eConfigText(addr, extra)), 0o600)
			p.cmd.Process.Signal(syscall.SIGHUP)
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
		}
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	acked := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan payload)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pl := range work {
				status, ans, err := post(client, addr, pl)
				if err != nil || status != 200 {
					t.Errorf("post %s during reloads: %d %v %v", pl.id, status, ans, err)
					continue
				}
				mu.Lock()
				acked[ans["id"]] = true
				mu.Unlock()
			}
		}()
	}
	for _, pl := range payloads {
		work <- pl
	}
	close(work)
	wg.Wait()
	close(stop)
	reloads.Wait()
	if n := strings.Count(p.logs.String(), "config reloaded"); n < 3 {
		t.Fatalf("only %d reloads happened during the run", n)
	}
	if strings.Contains(p.logs.String(), "reload refused") {
		t.Errorf("a good config was refused:\n%s", p.logs.String())
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		seen, _ := fileEvents(t, filepath.Join(dir, "out", "events.jsonl"))
		missing := 0
		for id := range acked {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events never reached the file", missing, len(acked))
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _, _ := runCLI(t, "events", "-c", cfg, "--limit", "0", "--json")
	if n := strings.Count(out, "\n"); n != len(acked) {
		t.Errorf("%d events stored, %d acknowledged", n, len(acked))
	}
}

// TestServeHTTPS serves with tls_cert and tls_key and takes a webhook over
// HTTPS.
func TestServeHTTPS(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	ca, err := syslogfake.NewCA("bridge test")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue("bridge", []string{"127.0.0.1"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.WriteFiles(dir, ""); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(e2eConfigText(addr, ""), "server:\n", "server:\n  tls_cert: cert.pem\n  tls_key: key.pem\n", 1)
	cfg := filepath.Join(dir, "bridge.yaml")
	os.WriteFile(cfg, []byte(text), 0o600)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	startServe(t, client, "https://"+addr, cfg, addr)
	body := []byte(`{"id":"tls-1","type":"agent.error","data":{"agent_id":"a"}}`)
	req, _ := http.NewRequest("POST", "https://"+addr+"/webhooks/sa", strings.NewReader(string(body)))
	e2eAuth["sa"].Apply(req, body)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTPS webhook: %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on an HTTPS listener")
		}
	}
}
