// Package rules compiles the `rules:` section of the config and evaluates
// events against it (SPEC 5), and runs rule tests (SPEC 6).
//
// # Conditions
//
// A rule's `when` is an expr-lang expression over the Event fields id,
// source, vendor, type, severity, title, subject (strings), time, received
// (times) and data (the vendor's object). It is type-checked at load time
// and must be boolean, so `severity == 3`, a misspelled field or a
// non-boolean expression is a load-time problem.
//
// A missing key of data (or a JSON null) never turns into a run-time error
// storm: a member of it is nil (`data.a.b` when a is missing), an ordering
// comparison with nil (`data.missing > 0`) is false, and nil is false where
// a boolean is needed. Any other failure on nil (arithmetic, len, lower...)
// makes the rule not match when a data path the rule reads is missing from
// the event; only failures that are not explained by a missing key are
// reported as rule errors.
//
// # Index
//
// Rules are indexed by the constant values their `when` requires of type,
// source or vendor: top-level `&&` conjuncts of the forms `type == "x"`,
// `"x" == vendor` and `source in ["a", "b"]`, read from the expression
// itself. An event runs only the rules indexed under its own values and the
// rules without such a conjunct, always in file order.
//
// # Templates
//
// Every string of an action (at any depth, map keys excepted) is a Go
// text/template over the same fields ({{ .data.x }}, {{ .severity }}),
// parsed at load time. A missing key prints as "", also below a missing
// map (.data.a.b); a printed time is RFC 3339. Numbers and booleans written
// in the YAML stay numbers and booleans. Besides text/template's own
// functions there are, with sprig's argument order (the piped value comes
// last) and nil taken as "":
//
//	json, toJson  v           v as JSON (times in RFC 3339)
//	toString      v           v as text ("" for nil, times in RFC 3339)
//	default       d v         v, or d when v is empty (nil, "", 0, false, empty list or map)
//	coalesce      a b ...     the first argument that is not empty
//	empty         v           whether v is empty, as default decides
//	upper, lower  s           s in upper or lower case
//	title         s           s with the first letter of every word in upper case
//	trim          s           s without leading and trailing white space
//	trimPrefix    p s         s without the prefix p
//	trimSuffix    p s         s without the suffix p
//	trunc         n s         the first n characters of s (the last -n when n < 0)
//	replace       old new s   s with every old replaced by new
//	contains      sub s       whether s contains sub
//	hasPrefix     p s         whether s starts with p
//	hasSuffix     p s         whether s ends with p
//	join          sep list    the elements of list as text, joined by sep
//	splitList     sep s       s split at every sep, as a list
//	quote, squote s           s in double quotes (Go escaping) or in single quotes
//	date          layout t    t (a time, RFC 3339 text or Unix seconds) in UTC,
//	                          with a Go layout: date "2006-01-02 15:04" .time
package rules
