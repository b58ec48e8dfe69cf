package fleet

import (
	"strings"
	"testing"
	"time"
)

func TestScaleToZero(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	ago := func(s int) time.Time { return now.Add(-time.Duration(s) * time.Second) }
	idle := &Activity{Known: true}
	busy := &Activity{Known: true, Busy: true}
	arrived := &Activity{Known: true, Requests: 3}
	unknown := &Activity{Why: "gke-east: endpoint picker not read"}
	const window = 60 * time.Second
	cases := []struct {
		name      string
		current   int32
		signals   []ScaleSignal
		act       *Activity
		idleSince time.Time
		desired   int32
		reason    string
		idleFrom  time.Time // the history's IdleSince after the decision
	}{
		{name: "idle for the first time: the window starts, one server stays",
			current: 1, signals: []ScaleSignal{waiting(5, 0)}, act: idle,
			desired: 1, reason: ScaleReasonTooFew, idleFrom: now},
		{name: "idle, within the window: one server stays",
			current: 1, signals: []ScaleSignal{waiting(5, 0)}, act: idle, idleSince: ago(30),
			desired: 1, reason: ScaleReasonTooFew, idleFrom: ago(30)},
		{name: "idle for the whole window: to zero",
			current: 2, signals: []ScaleSignal{waiting(5, 0, 0)}, act: idle, idleSince: ago(60),
			desired: 0, reason: ScaleReasonIdle, idleFrom: ago(60)},
		{name: "a request arrived at a picker: the window starts over",
			current: 1, signals: []ScaleSignal{waiting(5, 0)}, act: arrived, idleSince: ago(59),
			desired: 1, reason: ScaleReasonTooFew},
		{name: "a server runs a request: not idle",
			current: 1, signals: []ScaleSignal{waiting(5, 0)}, act: busy, idleSince: ago(120),
			desired: 1, reason: ScaleReasonTooFew},
		{name: "demand unknown: never to zero",
			current: 1, signals: []ScaleSignal{waiting(5, 0)}, act: unknown, idleSince: ago(120),
			desired: 1, reason: ScaleReasonTooFew},
		{name: "nothing read at all: never to zero",
			current: 1, signals: []ScaleSignal{waiting(5, 0)}, idleSince: ago(120),
			desired: 1, reason: ScaleReasonTooFew},
		{name: "loaded servers scale as with minReplicas 1",
			current: 2, signals: []ScaleSignal{waiting(5, 10, 10)}, act: busy,
			desired: 4, reason: ScaleReasonUp},
		{name: "at zero, a request arrives: one server",
			current: 0, act: arrived, idleSince: ago(600),
			desired: 1, reason: ScaleReasonActivated},
		{name: "at zero, nothing arrives: stays",
			current: 0, act: idle, idleSince: ago(600),
			desired: 0, reason: ScaleReasonIdle, idleFrom: ago(600)},
		{name: "at zero, demand unknown: stays, and says why",
			current: 0, act: unknown, idleSince: ago(600),
			desired: 0, reason: ScaleReasonIdle, idleFrom: ago(600)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Autoscale(ScaleInput{Now: now, Current: tc.current, Min: 0, Max: 8, Signals: tc.signals,
				Activity: tc.act, IdleWindow: window, History: ScaleHistory{IdleSince: tc.idleSince}})
			if d.Desired != tc.desired || d.Reason != tc.reason {
				t.Fatalf("got %d (%s: %s), want %d (%s)", d.Desired, d.Reason, d.Message, tc.desired, tc.reason)
			}
			if !d.History.IdleSince.Equal(tc.idleFrom) {
				t.Errorf("idle since %v, want %v", d.History.IdleSince, tc.idleFrom)
			}
			if strings.Contains(d.Message, "minReplicas 1") {
				t.Errorf("message %q speaks of a minReplicas the user did not set", d.Message)
			}
			if tc.act == unknown && !strings.Contains(d.Message, unknown.Why) && d.Reason == ScaleReasonIdle {
				t.Errorf("message %q does not say why demand is unknown", d.Message)
			}
			if change := d.Desired - tc.current; change != 0 {
				if n := len(d.History.Events); n == 0 || d.History.Events[n-1].Change != change || !d.History.Events[n-1].At.Equal(now) {
					t.Errorf("the change %+d is not in the history's events %+v (the step limits count it)", change, d.History.Events)
				}
			}
		})
	}
}

// TestScaleToZeroRoundTrip: an idle fleet goes to zero after the window, a request
// brings one server back, and the window starts over from there.
func TestScaleToZeroRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	in := ScaleInput{Current: 2, Min: 0, Max: 8, IdleWindow: 30 * time.Second}
	step := func(at int, act Activity, signals ...ScaleSignal) ScaleDecision {
		in.Now, in.Activity, in.Signals = now.Add(time.Duration(at)*time.Second), &act, signals
		d := Autoscale(in)
		in.Current, in.History = d.Desired, d.History
		return d
	}
	for at := 0; at < 30; at += 10 {
		if d := step(at, Activity{Known: true}, waiting(5, 0, 0)); d.Desired == 0 {
			t.Fatalf("at %ds: to zero before the idle window (%s)", at, d.Message)
		}
	}
	if d := step(30, Activity{Known: true}, waiting(5, 0)); d.Desired != 0 {
		t.Fatalf("idle for the window: %d (%s), want 0", d.Desired, d.Message)
	}
	if d := step(40, Activity{Known: true}); d.Desired != 0 {
		t.Fatalf("at zero without demand: %d", d.Desired)
	}
	if d := step(50, Activity{Known: true, Requests: 1}); d.Desired != 1 || d.Reason != ScaleReasonActivated {
		t.Fatalf("a request at zero: %d (%s), want 1 Activated", d.Desired, d.Reason)
	}
	if d := step(60, Activity{Known: true, Busy: true}, waiting(5, 20)); d.Desired != 4 {
		t.Fatalf("the first server loaded 4x: %d (%s), want 4", d.Desired, d.Message)
	}
}
