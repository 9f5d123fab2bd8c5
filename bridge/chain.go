package bridge

// ReplayCandidate is a failed delivery a replay picked, as the stores'
// Replay reads it for PlanReplay.
type ReplayCandidate struct {
	ID         int64
	Sink       string
	Event      int64 // the store's key of its event
	Rule       string
	Index      int // its action's index in the rule
	AfterIndex int // the index of the action it runs after; -1: none
}

// ReplayStep is a delivery a replay puts back: due now, or (Wait) waiting
// for the action it runs after.
type ReplayStep struct {
	ID   int64
	Sink string
	Wait bool
}

// PlanReplay decides, for the stores' Replay, what becomes of each picked
// delivery (sorted by event, rule and action index, so an action comes
// before its dependents): one that runs after no action is due now; a
// dependent is due now when the action it runs after is delivered, waits
// when that action is pending or replayed with it, and is left failed (not
// in the plan) when that action failed and stays so. parentStatus reads the
// status of the action a dependent runs after.
func PlanReplay(picked []ReplayCandidate, parentStatus func(ReplayCandidate) (string, error)) ([]ReplayStep, error) {
	type key struct {
		event int64
		rule  string
		index int
	}
	decided := map[key]bool{} // picked: replayed or not
	var plan []ReplayStep
	for _, c := range picked {
		step := ReplayStep{ID: c.ID, Sink: c.Sink}
		replay := true
		if c.AfterIndex >= 0 {
			if r, ok := decided[key{c.Event, c.Rule, c.AfterIndex}]; ok {
				replay, step.Wait = r, true
			} else {
				st, err := parentStatus(c)
				if err != nil {
					return nil, err
				}
				switch st {
				case StatusPending:
					step.Wait = true
				case StatusFailed:
					replay = false
				}
			}
		}
		decided[key{c.Event, c.Rule, c.Index}] = replay
		if replay {
			plan = append(plan, step)
		}
	}
	return plan, nil
}
