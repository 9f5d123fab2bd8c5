package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/invopop/jsonschema"
)

// durationPattern is the duration text a Duration reads (ParseDuration:
// Go's units and d and w, without a minus sign: negative durations are
// refused).
const durationPattern = `^\+?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d|w))+)$`

// JSONSchema returns a JSON Schema (draft 2020-12) of the config file, for
// editors to complete and check keys (`bridge schema`,
// docs/bridge.schema.json). It is reflected from Config and from each sink
// type's config and action structs, with the loader's rules: keys are the
// yaml tags, an unknown key is an error everywhere, a type with its own
// UnmarshalYAML takes anything (the loader does not look inside it either)
// unless it names the type it reads like with a JSONSchemaAlias() any
// method, a Duration is duration text (Go's units, and d and w) or a number of seconds, and a whole number,
// a number or true/false may also be written as a ${VAR} reference, which
// is what an editor sees before expansion. A sink entry takes the keys every
// sink takes plus its type's own; an action takes `sink` plus the action
// keys of any sink type, since it names a sink, not a type. Defaults are
// the loader's. Output is indented by two spaces and stable.
func JSONSchema(types map[string]SinkType) ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag: "yaml",
		// No key is required by its type: the loader fills in defaults,
		// and Validate says what is missing.
		RequiredFromJSONSchemaTags: true,
		Anonymous:                  true,
		ExpandedStruct:             true,
		Namer:                      schemaName,
		Mapper:                     schemaMapper,
	}
	root := r.Reflect(&Config{})
	root.Title = "bridge config"
	root.Description = "The bridge's config file (docs/config.md). Generated from the config types by `bridge schema`."
	defs := root.Definitions
	defs["Duration"] = &jsonschema.Schema{
		Description: "Duration text (500ms, 10s, 5m, 24h, 30d, 1w; units may be combined: 1w2d3h) or a number of seconds.",
		AnyOf: []*jsonschema.Schema{
			{Type: "number", Minimum: "0"},
			{Type: "string", Pattern: durationPattern},
			{Ref: "#/$defs/env"},
		},
	}
	defs["Secret"] = &jsonschema.Schema{Type: "string", Description: "A secret: never printed, in logs, errors or dry runs. Usually a ${VAR} reference."}
	defs["env"] = &jsonschema.Schema{
		Type:        "string",
		Pattern:     envRef.String(),
		Description: "A ${VAR} or ${VAR:-default} reference, replaced by the environment variable's value when the file is loaded.",
	}

	// server and store appear once: their defaults go into their definitions.
	for key, fv := range yamlValues(reflect.ValueOf(DefaultConfig())) {
		if fv.Kind() != reflect.Struct {
			continue
		}
		p, _ := root.Properties.Get(key)
		if d := defs[strings.TrimPrefix(refOf(p), "#/$defs/")]; d != nil {
			setDefaults(d.Properties, fv)
		}
	}

	names := make([]string, 0, len(types))
	for n := range types {
		names = append(names, n)
	}
	sort.Strings(names)

	entryName := schemaName(reflect.TypeOf(SinkEntry{}))
	entry := defs[entryName]
	if entry == nil {
		return nil, fmt.Errorf("schema: no definition for %s", entryName)
	}
	setDefaults(entry.Properties, reflect.ValueOf(defaultSinkEntry()))
	if err := sinkSchemas(r, defs, entryName, names, types); err != nil {
		return nil, err
	}
	actionName := schemaName(reflect.TypeOf(ActionConfig{}))
	action := defs[actionName]
	if action == nil {
		return nil, fmt.Errorf("schema: no definition for %s", actionName)
	}
	if err := actionSchema(r, defs, action, names, types); err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return buf.Bytes(), nil
}

// sinkSchemas turns the SinkEntry definition into a choice by `type`: one
// definition per sink type ("SinkEntry.jira") with the common keys and the
// type's own, and no other.
func sinkSchemas(r *jsonschema.Reflector, defs jsonschema.Definitions, entryName string, names []string, types map[string]SinkType) error {
	entry := defs[entryName]
	common := entry.Properties
	dispatch := &jsonschema.Schema{
		Type:        "object",
		Description: "A sink: name, type, the keys every sink takes (timeout, concurrency, retry) and the keys of its type.",
		Properties:  jsonschema.NewProperties(),
		Required:    []string{"name", "type"},
	}
	for k, p := range common.FromOldest() {
		if k == "type" {
			enum := make([]any, len(names))
			for i, n := range names {
				enum[i] = n
			}
			p = &jsonschema.Schema{Type: "string", Enum: enum}
		}
		dispatch.Properties.Set(k, p)
	}
	for _, name := range names {
		own := r.Reflect(types[name].NewConfig())
		if err := mergeDefs(defs, own.Definitions); err != nil {
			return err
		}
		setDefaults(own.Properties, reflect.ValueOf(types[name].NewConfig()))
		def := &jsonschema.Schema{
			Type:                 "object",
			Description:          fmt.Sprintf("A sink of type %s.", name),
			Properties:           jsonschema.NewProperties(),
			AdditionalProperties: jsonschema.FalseSchema,
		}
		for k, p := range common.FromOldest() {
			if k == "type" {
				p = &jsonschema.Schema{Const: name}
			}
			def.Properties.Set(k, p)
		}
		for k, p := range own.Properties.FromOldest() {
			if _, ok := common.Get(k); ok {
				continue // the loader reads the common keys, never the type's
			}
			def.Properties.Set(k, p)
		}
		ref := entryName + "." + name
		defs[ref] = def
		cond := &jsonschema.Schema{Properties: jsonschema.NewProperties(), Required: []string{"type"}}
		cond.Properties.Set("type", &jsonschema.Schema{Const: name})
		dispatch.AllOf = append(dispatch.AllOf, &jsonschema.Schema{If: cond, Then: &jsonschema.Schema{Ref: "#/$defs/" + ref}})
	}
	*entry = *dispatch
	return nil
}

// actionSchema gives the ActionConfig definition every sink type's action
// keys. A key two types define differently takes either definition.
func actionSchema(r *jsonschema.Reflector, defs jsonschema.Definitions, action *jsonschema.Schema, names []string, types map[string]SinkType) error {
	var keys []string
	alts := map[string][]*jsonschema.Schema{}
	seen := map[string]map[string]bool{}
	for _, name := range names {
		if types[name].NewAction == nil {
			continue
		}
		a := r.Reflect(types[name].NewAction())
		if err := mergeDefs(defs, a.Definitions); err != nil {
			return err
		}
		for k, p := range a.Properties.FromOldest() {
			if k == "sink" {
				continue
			}
			b, err := json.Marshal(p)
			if err != nil {
				return fmt.Errorf("schema: %w", err)
			}
			if seen[k] == nil {
				seen[k] = map[string]bool{}
				keys = append(keys, k)
			}
			if !seen[k][string(b)] {
				seen[k][string(b)] = true
				alts[k] = append(alts[k], p)
			}
		}
	}
	action.Description = "An action: the sink it goes to, and that sink's action keys (every text a template). " +
		"Any sink type's keys are offered here; bridge validate checks them against the named sink's type."
	action.Required = []string{"sink"}
	for _, k := range keys {
		p := alts[k][0]
		if len(alts[k]) > 1 {
			p = &jsonschema.Schema{AnyOf: alts[k]}
		}
		action.Properties.Set(k, p)
	}
	return nil
}

// mergeDefs adds src's definitions to dst. Two types given one name would
// make one of them wrong, so that is an error.
func mergeDefs(dst, src jsonschema.Definitions) error {
	for k, s := range src {
		if d, ok := dst[k]; ok {
			a, _ := json.Marshal(d)
			b, _ := json.Marshal(s)
			if !bytes.Equal(a, b) {
				return fmt.Errorf("schema: two config types are both named %s", k)
			}
			continue
		}
		dst[k] = s
	}
	return nil
}

// schemaName names a type's definition: its name for this package's types,
// pkg.Name for the others (jira.Config, tlsconf.Config).
func schemaName(t reflect.Type) string {
	if t.Name() == "" {
		return ""
	}
	if t.PkgPath() == reflect.TypeOf(Config{}).PkgPath() {
		return t.Name()
	}
	return path.Base(t.PkgPath()) + "." + t.Name()
}

var (
	durationType = reflect.TypeOf(Duration(0))
	secretType   = reflect.TypeOf(Secret(""))
)

// schemaMapper gives the types the loader reads its own way their schema.
func schemaMapper(t reflect.Type) *jsonschema.Schema {
	switch {
	case t == durationType:
		return &jsonschema.Schema{Ref: "#/$defs/Duration"}
	case t == secretType:
		return &jsonschema.Schema{Ref: "#/$defs/Secret"}
	case decodesItself(t):
		return &jsonschema.Schema{} // it reads itself: anything goes
	}
	orEnv := func(typ string) *jsonschema.Schema {
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: typ}, {Ref: "#/$defs/env"}}}
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return orEnv("integer")
	case reflect.Float32, reflect.Float64:
		return orEnv("number")
	case reflect.Bool:
		return orEnv("boolean")
	}
	return nil
}

// setDefaults gives each property of props whose field in struct v is not
// zero that value as its default. Properties are copied first: one schema
// may be shared by several keys with different defaults.
func setDefaults(props schemaProps, v reflect.Value) {
	for key, fv := range yamlValues(v) {
		d := defaultValue(fv)
		if d == nil {
			continue
		}
		if p, ok := props.Get(key); ok {
			cp := *p
			cp.Default = d
			props.Set(key, &cp)
		}
	}
}

// schemaProps is a schema's properties, an ordered map.
type schemaProps interface {
	Get(key string) (*jsonschema.Schema, bool)
	Set(key string, s *jsonschema.Schema) (*jsonschema.Schema, bool)
}

// defaultValue is a default as the config file would write it, or nil for
// a zero value (no default worth showing) and for secrets.
func defaultValue(v reflect.Value) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.IsZero() || v.Type() == secretType {
		return nil
	}
	if v.Type() == durationType {
		return durationText(time.Duration(v.Int()))
	}
	switch v.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return v.Interface()
	case reflect.Struct:
		m := map[string]any{}
		for key, fv := range yamlValues(v) {
			if d := defaultValue(fv); d != nil {
				m[key] = d
			}
		}
		if len(m) == 0 {
			return nil
		}
		return m
	}
	return nil
}

// durationText writes d as a person would: 720h, 5m, 1m30s, 500ms.
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// yamlValues yields the yaml key and value of each field of struct v (a
// pointer is followed), inline structs flattened as yamlFields does.
func yamlValues(v reflect.Value) func(yield func(string, reflect.Value) bool) {
	return func(yield func(string, reflect.Value) bool) {
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			if v.IsNil() {
				return
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return
		}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if strings.Contains(opts, "inline") {
				for k, fv := range yamlValues(v.Field(i)) {
					if !yield(k, fv) {
						return
					}
				}
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if !yield(name, v.Field(i)) {
				return
			}
		}
	}
}

// refOf returns the $ref of s, or "".
func refOf(s *jsonschema.Schema) string {
	if s == nil {
		return ""
	}
	return s.Ref
}
