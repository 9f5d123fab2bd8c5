package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"bridge/bridge"
)

// The JSON API (SPEC 10). Objects are those of `bridge events --json`
// (bridge.Event) and `bridge deliveries --json` (bridge.DeliveryRecord);
// lists are newest first, with next_cursor present while there is an
// older page (pass it back as ?cursor=).

type eventsResponse struct {
	Events     []*bridge.Event `json:"events"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

type eventResponse struct {
	Event      *bridge.Event            `json:"event"`
	Raw        any                      `json:"raw"` // the body as sent: JSON as is, anything else as a string
	Deliveries []*bridge.DeliveryRecord `json:"deliveries"`
}

type deliveriesResponse struct {
	Deliveries []*bridge.DeliveryRecord `json:"deliveries"`
	NextCursor string                   `json:"next_cursor,omitempty"`
}

type replayResponse struct {
	Replayed []int64 `json:"replayed"`
}

func (c *console) apiEvents(w http.ResponseWriter, r *http.Request) {
	eq, err := parseEventQuery(r.URL.Query())
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	evs, next, err := c.listEvents(r.Context(), eq)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	out := eventsResponse{Events: make([]*bridge.Event, len(evs)), NextCursor: next}
	for i, e := range evs {
		out.Events[i] = e.Event
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *console) apiEvent(w http.ResponseWriter, r *http.Request) {
	source, id := r.PathValue("source"), r.PathValue("id")
	se, raw, ds, err := c.eventWithDeliveries(r, source, id)
	if errors.Is(err, bridge.ErrNotFound) {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no event %q from source %q", id, source))
		return
	}
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	out := eventResponse{Event: se.Event, Raw: string(raw), Deliveries: ds}
	if json.Valid(raw) {
		out.Raw = json.RawMessage(raw)
	}
	if out.Deliveries == nil {
		out.Deliveries = []*bridge.DeliveryRecord{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *console) apiDeliveries(w http.ResponseWriter, r *http.Request) {
	dq, err := parseDeliveryQuery(r.URL.Query())
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	ds, next, err := c.listDeliveries(r.Context(), dq)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	if ds == nil {
		ds = []*bridge.DeliveryRecord{}
	}
	writeJSON(w, http.StatusOK, deliveriesResponse{Deliveries: ds, NextCursor: next})
}

// apiReplay replays one failed delivery: 200 with its id, 404 when there
// is no such delivery, 409 when it is not failed.
func (c *console) apiReplay(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a delivery id", r.PathValue("id")))
		return
	}
	d, err := c.delivery(r.Context(), id)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	if d == nil {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no delivery %d", id))
		return
	}
	if d.Status != bridge.StatusFailed {
		writeJSONError(w, http.StatusConflict, fmt.Sprintf("delivery %d is %s, not failed: only failed deliveries are replayed", id, d.Status))
		return
	}
	done, err := c.replay(r.Context(), []int64{id})
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	if len(done) == 0 {
		msg := fmt.Sprintf("delivery %d is no longer failed", id)
		if d.After != "" {
			msg = fmt.Sprintf("delivery %d runs after action %q of its rule, which failed: replay that delivery, and this one follows once it is delivered", id, d.After)
		}
		writeJSONError(w, http.StatusConflict, msg)
		return
	}
	c.log.Info("console: replayed deliveries", "user", userOf(r), "asked", 1, "replayed", len(done), "api", true)
	writeJSON(w, http.StatusOK, replayResponse{Replayed: done})
}

// tryRequest is POST /api/v1/try's body. Payload is the webhook body: a
// JSON value is posted as it is written, a string as its text (to try a
// body that is not JSON), as in rule tests.
type tryRequest struct {
	Source  string          `json:"source"`
	Payload json.RawMessage `json:"payload"`
}

func (c *console) apiTry(w http.ResponseWriter, r *http.Request) {
	var req tryRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSONError(w, http.StatusRequestEntityTooLarge, "the request body is too large")
			return
		}
		writeJSONError(w, http.StatusBadRequest, `the body must be {"source": NAME, "payload": BODY}: `+err.Error())
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		writeJSONError(w, http.StatusBadRequest, "unexpected data after the JSON body")
		return
	}
	if len(req.Payload) == 0 {
		writeJSONError(w, http.StatusBadRequest, `payload is required: the webhook body, a JSON value or a string`)
		return
	}
	payload := []byte(req.Payload)
	if req.Payload[0] == '"' {
		var s string
		if err := json.Unmarshal(req.Payload, &s); err != nil {
			writeJSONError(w, http.StatusBadRequest, "payload: "+err.Error())
			return
		}
		payload = []byte(s)
	}
	res, status, err := c.runTry(req.Source, payload)
	if err != nil {
		writeJSONError(w, status, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}
