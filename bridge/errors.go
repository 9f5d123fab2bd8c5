package bridge

import (
	"errors"
	"fmt"
	"math"
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
// Retry-After). The wait wins over the backoff schedule, within bounds: the
// pipeline waits at least retry.initial and at most retry.max_interval. A
// negative d counts as 0.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, after: max(d, 0)}
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

// MaxRetryAfter is the longest wait ParseRetryAfter returns: a longer
// Retry-After, up to Inf, counts as MaxRetryAfter. The pipeline waits at
// most the sink's retry.max_interval anyway; the bound keeps every wait a
// time.Duration that cannot overflow (a Duration holds about 292 years).
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
// Seconds may have a fraction; more than MaxRetryAfter, Inf included, give
// MaxRetryAfter. A date in the past gives 0, one further ahead than
// MaxRetryAfter gives MaxRetryAfter. A negative number, NaN or anything
// else is no Retry-After (false): the backoff schedule applies.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	// ParseFloat answers ±Inf with ErrRange for a number too large.
	if s, err := strconv.ParseFloat(v, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case math.IsNaN(s) || s < 0:
			return 0, false
		case s >= MaxRetryAfter.Seconds():
			return MaxRetryAfter, true
		}
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		// Time.Sub saturates instead of overflowing.
		return min(max(t.Sub(now), 0), MaxRetryAfter), true
	}
	return 0, false
}
