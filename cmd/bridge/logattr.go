package main

import (
	"log/slog"

	"bridge/bridge"
)

// durationsAsText is the JSON log handler's ReplaceAttr: it writes a
// duration as Go's text ("10s", "1.5ms") instead of slog's default, a
// number of nanoseconds that reads as seconds to no one and as a huge
// number to a log pipeline. bridge.Duration (config values) is written the
// same way. The text handler already writes durations as text.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	switch v := a.Value; v.Kind() {
	case slog.KindDuration:
		return slog.String(a.Key, v.Duration().String())
	case slog.KindAny:
		switch d := v.Any().(type) {
		case bridge.Duration:
			return slog.String(a.Key, d.String())
		case *bridge.Duration:
			if d != nil {
				return slog.String(a.Key, d.String())
			}
		}
	}
	return a
}
