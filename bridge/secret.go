package bridge

import (
	"encoding/json"
	"log/slog"
)

// Secret is a config value that must never be shown: it prints, logs and
// marshals as "<secret>". Value returns the real string for the one place
// that needs it (a signature check, an Authorization header).
type Secret string

const redacted = "<secret>"

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// String returns "<secret>", or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return s.String() }

// LogValue keeps slog from printing the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON writes "<secret>".
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML writes "<secret>".
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }
