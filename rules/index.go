package rules

import "bridge/bridge"

// index finds the rules an event can match without running the others.
// Every rule is listed once: under each value its index key allows, or in
// always when it has none. Lists hold rule positions in file order.
type index struct {
	by     [numFields]map[string][]int
	always []int
}

func buildIndex(rules []*rule) index {
	var ix index
	for f := range ix.by {
		ix.by[f] = map[string][]int{}
	}
	for i, r := range rules {
		if !r.indexed {
			ix.always = append(ix.always, i)
			continue
		}
		for _, v := range uniq(r.key.values) {
			ix.by[r.key.field][v] = append(ix.by[r.key.field][v], i)
		}
	}
	return ix
}

func uniq(vs []string) []string {
	var out []string
	for _, v := range vs {
		dup := false
		for _, o := range out {
			if o == v {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, v)
		}
	}
	return out
}

func fieldValue(ev *bridge.Event, field int) string {
	switch field {
	case fieldType:
		return ev.Type
	case fieldSource:
		return ev.Source
	default:
		return ev.Vendor
	}
}

// candidates returns an iterator over the positions of the rules ev can
// match, in file order.
func (ix *index) candidates(ev *bridge.Event) merger {
	var m merger
	for f := 0; f < numFields; f++ {
		m.lists[f] = ix.by[f][fieldValue(ev, f)]
	}
	m.lists[numFields] = ix.always
	return m
}

// merger merges sorted lists of rule positions that share no element.
type merger struct {
	lists [numFields + 1][]int
}

// next returns the smallest position left.
func (m *merger) next() (int, bool) {
	best := -1
	for i, l := range m.lists {
		if len(l) > 0 && (best < 0 || l[0] < m.lists[best][0]) {
			best = i
		}
	}
	if best < 0 {
		return 0, false
	}
	v := m.lists[best][0]
	m.lists[best] = m.lists[best][1:]
	return v, true
}
