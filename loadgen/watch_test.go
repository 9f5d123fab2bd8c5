package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bridge/bridge"
)

// TestWatchFile checks the end-to-end mode against a stand-in bridge that
// writes every event it acknowledges to a file, except those it drops.
func TestWatchFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(path, []byte(`{"id":"older-line"}`+"\n"), 0o600)
	var mu sync.Mutex
	posted := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			ID string `json:"id"`
		}
		json.Unmarshal(body, &ev)
		mu.Lock()
		defer mu.Unlock()
		posted++
		if !strings.HasSuffix(ev.ID, "-0000007") { // event 7 never reaches the file
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			f.Write(append([]byte(`{"id":"`+ev.ID+`","data":{}}`), '\n'))
			f.Close()
		}
		w.Write([]byte(`{"status":"accepted"}`))
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Options{URL: srv.URL, Auth: bridge.ClientAuth{Vendor: "secureagentics", Secret: "s"},
		N: 40, Concurrency: 4, WatchFile: path, WatchWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Acked != 40 || !rep.Watched || rep.Delivered != 39 {
		t.Fatalf("acked %d, delivered %d (want 40 and 39): %+v", rep.Acked, rep.Delivered, rep)
	}
	if rep.E2EP50 <= 0 || rep.E2EP99 < rep.E2EP50 || rep.E2EMax < rep.E2EP99 {
		t.Errorf("end-to-end percentiles %s %s %s", rep.E2EP50, rep.E2EP99, rep.E2EMax)
	}
	var out strings.Builder
	rep.Write(&out)
	if !strings.Contains(out.String(), "end to end (sent to line in file): 39 of 40") {
		t.Errorf("summary lacks the end-to-end line:\n%s", out.String())
	}
}
