package bridge

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWriteAck: the ack is what writeJSON writes for the struct it stands
// for.
func TestWriteAck(t *testing.T) {
	for _, id := range []string{"evt_1", `a"b\<>&` + "\u2028\x01\xff", ""} {
		for _, status := range []string{"accepted", "duplicate"} {
			want := httptest.NewRecorder()
			writeJSON(want, http.StatusOK, struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}{id, status})
			got := httptest.NewRecorder()
			writeAck(got, id, status)
			if got.Code != want.Code || got.Body.String() != want.Body.String() || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
				t.Errorf("writeAck(%q, %q) = %d %q %q, want %d %q %q", id, status, got.Code, got.Header().Get("Content-Type"), got.Body,
					want.Code, want.Header().Get("Content-Type"), want.Body)
			}
		}
	}
}

// TestReadBody: the body is read whole whatever the Content-Length says,
// and one past the limit is a *http.MaxBytesError.
func TestReadBody(t *testing.T) {
	body := strings.Repeat("x", 1000)
	for _, tt := range []struct {
		name     string
		length   int64
		limit    int64
		tooLarge bool
	}{
		{"exact", 1000, 2000, false},
		{"unknown", -1, 2000, false},
		{"short", 10, 2000, false},
		{"long", 5000, 2000, false},
		{"over the limit", 1000, 999, true},
		{"over the limit, unknown length", -1, 999, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			got, err := readBody(http.MaxBytesReader(w, nopCloser{strings.NewReader(body)}, tt.limit), tt.length, tt.limit)
			var mbe *http.MaxBytesError
			if tt.tooLarge {
				if !errors.As(err, &mbe) {
					t.Fatalf("err = %v, want a MaxBytesError", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, []byte(body)) {
				t.Fatalf("readBody = %d bytes, %v", len(got), err)
			}
		})
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }
