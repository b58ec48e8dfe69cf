package fleet

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Activity is what one read saw of a service's demand, for scale to zero: its servers'
// running and waiting requests, and the requests its endpoint pickers received.
type Activity struct {
	// Known: every cluster's servers and endpoint pickers were read, the pickers twice at
	// least (their request counters need a baseline). An unknown read is never idle.
	Known bool
	// Busy: a ready server reported a running or waiting request.
	Busy bool
	// Requests the endpoint pickers received since the previous read.
	Requests float64
	// Why it is unknown, for the decision's message.
	Why string
}

// Idle: everything was read, and no server had a request nor did one arrive.
func (a Activity) Idle() bool { return a.Known && !a.Busy && a.Requests == 0 }

// ServersBusy says whether any ready server reports a running or waiting request.
func ServersBusy(clusters []Servers) bool {
	for _, c := range clusters {
		for _, r := range c.Read {
			if r.Ready && (r.Values[VLLMRunningMetric] > 0 || r.Values[VLLMWaitingMetric] > 0) {
				return true
			}
		}
	}
	return false
}

// scaleToZero is Autoscale with Min 0.
func scaleToZero(in ScaleInput) ScaleDecision {
	act := Activity{Why: "demand not read yet"}
	if in.Activity != nil {
		act = *in.Activity
	}
	if in.Current == 0 {
		if act.Requests > 0 {
			up := min(int32(1), in.Max)
			return ScaleDecision{Desired: up, Recommended: up, Reason: ScaleReasonActivated,
				Message: fmt.Sprintf("the endpoint pickers received %s requests with no server running", num(act.Requests)),
				History: ScaleHistory{
					Recommendations: []ScaleRecommendation{{At: in.Now, Replicas: up}},
					Events:          append(slices.Clone(in.History.Events), ScaleEvent{At: in.Now, Change: up}),
				}}
		}
		msg := "no request reached the endpoint pickers: no server runs until one does"
		if !act.Known {
			msg = fmt.Sprintf("at zero, and the endpoint pickers' requests are unknown (%s): no server runs until they are read", act.Why)
		}
		return ScaleDecision{Desired: 0, Recommended: 0, Reason: ScaleReasonIdle, Message: msg, History: in.History}
	}
	one := in
	one.Min = 1
	d := autoscale(one)
	if d.Reason == ScaleReasonTooFew {
		d.Message = strings.TrimSuffix(d.Message, "; raised to minReplicas 1") + "; one server at least until idle for the idle window"
	}
	d.History.IdleSince = in.History.IdleSince
	switch {
	case !act.Idle():
		d.History.IdleSince = time.Time{}
	case d.History.IdleSince.IsZero():
		d.History.IdleSince = in.Now
	}
	if act.Idle() && !in.Now.Before(d.History.IdleSince.Add(in.IdleWindow)) {
		d.Desired, d.Recommended, d.Reason = 0, 0, ScaleReasonIdle
		d.Message = fmt.Sprintf("no server had a request and no endpoint picker received one for %s (idleWindowSeconds)", in.IdleWindow)
		d.History.Recommendations = nil
		d.History.Events = append(slices.Clone(in.History.Events), ScaleEvent{At: in.Now, Change: -in.Current})
	}
	return d
}
