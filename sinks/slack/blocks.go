package slack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"bridge/bridge"
)

// Slack's limits on a message. A message over them is refused
// (invalid_blocks, msg_too_long), so every text is cut to fit, by runes.
const (
	maxTextRunes    = 40000 // the top-level text
	maxBlocks       = 50    // blocks per message
	maxHeaderRunes  = 150   // a header block's text
	maxSectionRunes = 3000  // a section block's text
	maxFieldRunes   = 2000  // each of a section's fields
	maxFields       = 10    // fields per section
	maxContextElems = 10    // elements per context block
)

// emojiCode matches a Slack emoji short code such as :rotating_light:.
var emojiCode = regexp.MustCompile(`:[a-z0-9_+'-]+:`)

// cut shortens s to at most n runes, ending with an ellipsis when cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}

// escape makes untrusted text safe for mrkdwn: Slack reads &, < and > as
// control characters (<!channel> would notify everyone).
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// cutEscaped is cut for escaped text: it never leaves half an entity.
func cutEscaped(s string, n int) string {
	c := cut(s, n)
	if c == s {
		return s
	}
	body := strings.TrimSuffix(c, "…")
	if amp := strings.LastIndexByte(body, '&'); amp >= 0 && !strings.Contains(body[amp:], ";") {
		body = body[:amp]
	}
	return body + "…"
}

// textObject is a Block Kit text object.
type textObject struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// block is the subset of Block Kit the default layout uses.
type block struct {
	Type     string       `json:"type"`
	Text     *textObject  `json:"text,omitempty"`
	Fields   []textObject `json:"fields,omitempty"`
	Elements []textObject `json:"elements,omitempty"`
}

// defaultBlocks lays an event out for reading: a header with the title, the
// action's text when it says more than the title, the severity, source, type
// and subject as fields, and a context line with the event id and time.
func defaultBlocks(ev *bridge.Event, text string) []json.RawMessage {
	title := strings.TrimSpace(ev.Title)
	if title == "" {
		title = ev.Type
	}
	if title == "" {
		title = "Event " + ev.ID
	}
	blocks := []block{{Type: "header", Text: &textObject{Type: "plain_text", Text: cut(title, maxHeaderRunes), Emoji: true}}}
	if t := strings.TrimSpace(text); t != "" && strings.TrimSpace(emojiCode.ReplaceAllString(t, "")) != title {
		blocks = append(blocks, block{Type: "section", Text: &textObject{Type: "mrkdwn", Text: cut(t, maxSectionRunes)}})
	}
	var fields []textObject
	for _, f := range []struct{ name, value string }{
		{"Severity", ev.Severity}, {"Source", ev.Source}, {"Type", ev.Type}, {"Subject", ev.Subject},
	} {
		if f.value == "" {
			continue
		}
		label := "*" + f.name + "*\n"
		fields = append(fields, textObject{Type: "mrkdwn", Text: label + cutEscaped(escape(f.value), maxFieldRunes-utf8.RuneCountInString(label))})
	}
	if len(fields) > 0 {
		blocks = append(blocks, block{Type: "section", Fields: fields})
	}
	ctx := "Event " + escape(ev.ID)
	if !ev.Time.IsZero() {
		ctx += " · " + ev.Time.UTC().Format(time.RFC3339)
	}
	blocks = append(blocks, block{Type: "context", Elements: []textObject{{Type: "mrkdwn", Text: cutEscaped(ctx, maxSectionRunes)}}})

	out := make([]json.RawMessage, len(blocks))
	for i, b := range blocks {
		out[i], _ = marshalNoEscape(b) // plain structs of strings: cannot fail
	}
	return out
}

// parseBlocks reads a rendered blocks template: a JSON array of objects,
// each with a "type". Texts are cut to Slack's limits and blocks past the
// fiftieth dropped, so Slack never refuses the message for its size.
func parseBlocks(s string) ([]json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var list []any
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("blocks must be a JSON array of Block Kit blocks: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("blocks must be a JSON array of Block Kit blocks: unexpected data after the array")
	}
	if len(list) > maxBlocks {
		list = list[:maxBlocks]
	}
	out := make([]json.RawMessage, 0, len(list))
	for i, v := range list {
		b, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("blocks: block %d is not a JSON object", i+1)
		}
		if t, _ := b["type"].(string); t == "" {
			return nil, fmt.Errorf("blocks: block %d has no \"type\"", i+1)
		}
		clampBlock(b)
		raw, err := marshalNoEscape(b)
		if err != nil {
			return nil, fmt.Errorf("blocks: block %d: %v", i+1, err)
		}
		out = append(out, raw)
	}
	return out, nil
}

// clampBlock cuts the texts of header, section and context blocks to
// Slack's limits.
func clampBlock(b map[string]any) {
	cutText := func(obj any, n int) {
		if t, ok := obj.(map[string]any); ok {
			if s, ok := t["text"].(string); ok {
				t["text"] = cut(s, n)
			}
		}
	}
	switch b["type"] {
	case "header":
		cutText(b["text"], maxHeaderRunes)
	case "section":
		cutText(b["text"], maxSectionRunes)
		if fields, ok := b["fields"].([]any); ok {
			if len(fields) > maxFields {
				fields = fields[:maxFields]
				b["fields"] = fields
			}
			for _, f := range fields {
				cutText(f, maxFieldRunes)
			}
		}
	case "context":
		if elems, ok := b["elements"].([]any); ok && len(elems) > maxContextElems {
			b["elements"] = elems[:maxContextElems]
		}
	}
}

// marshalNoEscape is json.Marshal without HTML escaping, so &, < and > reach
// Slack as the user wrote them.
func marshalNoEscape(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
