package bridge

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
)

// readBody reads a webhook body of at most limit bytes (r is already an
// http.MaxBytesReader). With a Content-Length, as vendors send, it reads
// into one buffer of that size; io.ReadAll would grow one from 512 bytes,
// copying a 1 KB body three times.
func readBody(r io.Reader, contentLength, limit int64) ([]byte, error) {
	if contentLength <= 0 || contentLength > limit {
		return io.ReadAll(r)
	}
	// MinRead spare bytes: ReadFrom's read that finds EOF needs no growth.
	buf := bytes.NewBuffer(make([]byte, 0, contentLength+bytes.MinRead))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// queryOf returns the request's query parameters, without parsing (and
// allocating) for the common request that has none.
func queryOf(r *http.Request) url.Values {
	if r.URL.RawQuery == "" {
		return nil
	}
	return r.URL.Query()
}

// writeAck writes the answer to a stored webhook, {"id":...,"status":...},
// as writeJSON would write it (TestWriteAck), without an encoder per
// request: it is written for every event.
func writeAck(w http.ResponseWriter, id, status string) {
	b := make([]byte, 0, 32+len(id)+len(status))
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, status)
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}
