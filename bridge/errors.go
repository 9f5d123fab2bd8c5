package bridge

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure that no retry can fix (bad credentials, a
// missing project, a refused payload): the delivery fails at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// retryAfterError asks for the next attempt no sooner than after.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as retryable no sooner than after d (a sink's
// Retry-After). The wait wins over the backoff schedule.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, after: d}
}

// RetryDelay returns the wait an error asked for with RetryAfter.
func RetryDelay(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}

// HTTPStatusError classifies an HTTP answer: nil for 2xx; for 408, 429 and
// 5xx a retryable error, honouring Retry-After (seconds or an HTTP date);
// for every other status a Permanent error. msg is the service's own error
// text, kept word for word in the error.
func HTTPStatusError(status int, header http.Header, msg string) error {
	if status >= 200 && status < 300 {
		return nil
	}
	msg = strings.TrimSpace(msg)
	var err error
	if msg == "" {
		err = fmt.Errorf("HTTP %d %s", status, http.StatusText(status))
	} else {
		err = fmt.Errorf("HTTP %d: %s", status, msg)
	}
	if status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500 {
		if d, ok := ParseRetryAfter(header.Get("Retry-After"), time.Now()); ok {
			return RetryAfter(err, d)
		}
		return err
	}
	return Permanent(err)
}

// ParseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}
