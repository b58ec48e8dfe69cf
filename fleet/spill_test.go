package fleet

import (
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// TestDecideSpill: a reachable cluster that cannot schedule some of its replicas keeps what
// it can run plus one requested replica, the rest runs in the others until that one is
// scheduled.
func TestDecideSpill(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return t0.Add(-d) }
	// a out of room: 1 of its 3 replicas scheduled, 2 pending.
	full := func(since time.Duration, scaleUp v1alpha1.ScaleUpState, spilled int32) Observed {
		return Observed{Health: v1alpha1.Degraded, Since: ago(since), Desired: 3, Ready: 1, Scheduled: 1,
			Unschedulable: 2, ScaleUp: scaleUp, Spilled: spilled}
	}
	healthy := Observed{Health: v1alpha1.Healthy, Desired: 3, Ready: 3}
	cases := []struct {
		name     string
		mutate   func(*v1alpha1.FleetInferenceService)
		obs      map[string]Observed
		want     string // shares of a, b
		spilled  int32  // a's
		borrowed int32  // b's
		recheck  time.Duration
		why      string // in a's reason
	}{
		{name: "within spillover.after: nothing moves", obs: map[string]Observed{"a": full(30*time.Second, "", 0), "b": healthy},
			want: "a=3 b=3 ", recheck: 90 * time.Second},
		{name: "after spillover.after: the two that do not fit spill", obs: map[string]Observed{"a": full(2*time.Minute, "", 0), "b": healthy},
			want: "a=2 b=5 ", spilled: 2, borrowed: 2, why: "unschedulable since 2026-12-01T09:58:00Z"},
		{name: "scale-up failed: at once", obs: map[string]Observed{"a": full(time.Second, v1alpha1.ScaleUpFailed, 0), "b": healthy},
			want: "a=2 b=5 ", spilled: 2, borrowed: 2, why: "scale-up failed"},
		{name: "no node pool can grow: at once", obs: map[string]Observed{"a": full(time.Second, v1alpha1.ScaleUpNotTriggered, 0), "b": healthy},
			want: "a=2 b=5 ", spilled: 2, borrowed: 2, why: "no node pool can grow"},
		{name: "scale-up under way: waited for past spillover.after", obs: map[string]Observed{"a": full(5*time.Minute, v1alpha1.ScaleUpTriggered, 0), "b": healthy},
			want: "a=3 b=3 ", recheck: 10 * time.Minute},
		{name: "scale-up under way past scaleUpTimeout: spill", obs: map[string]Observed{"a": full(15*time.Minute, v1alpha1.ScaleUpTriggered, 0), "b": healthy},
			want: "a=2 b=5 ", spilled: 2, borrowed: 2, why: "scale-up under way"},
		{name: "spilled, the probe still pending: stays spilled",
			obs:  map[string]Observed{"a": {Health: v1alpha1.Degraded, Since: ago(time.Hour), Desired: 2, Scheduled: 1, Unschedulable: 1, Spilled: 2}, "b": {Health: v1alpha1.Healthy, Desired: 5, Ready: 5}},
			want: "a=2 b=5 ", spilled: 2, borrowed: 2},
		{name: "spilled, the probe scheduled: all return, b keeps them until a has them ready",
			obs:  map[string]Observed{"a": {Health: v1alpha1.Healthy, Since: ago(time.Second), Desired: 2, Ready: 2, Scheduled: 0, Spilled: 2}, "b": {Health: v1alpha1.Healthy, Desired: 5, Ready: 5}},
			want: "a=3 b=5 "},
		{name: "spilled, then unreachable within unhealthyAfter: the spilled stay away",
			obs:  map[string]Observed{"a": {Health: v1alpha1.Unreachable, Since: ago(time.Second), Desired: 2, Spilled: 2}, "b": {Health: v1alpha1.Healthy, Desired: 5, Ready: 5}},
			want: "a=2 b=5 ", spilled: 2, borrowed: 2, recheck: 29 * time.Second},
		{name: "spilled, the probe and another scheduled: one returns",
			obs:  map[string]Observed{"a": {Health: v1alpha1.Degraded, Since: ago(time.Hour), Desired: 3, Scheduled: 2, Unschedulable: 1, Spilled: 1}, "b": {Health: v1alpha1.Healthy, Desired: 4, Ready: 4}},
			want: "a=3 b=4 ", spilled: 1, borrowed: 1},
		{name: "b has room for one: one spills, the other stays pending",
			mutate: func(s *v1alpha1.FleetInferenceService) { s.Spec.Placement.Clusters[1].MaxReplicas = ptr.To[int32](4) },
			obs:    map[string]Observed{"a": full(time.Hour, "", 0), "b": healthy},
			want:   "a=3 b=4 ", spilled: 1, borrowed: 1},
		{name: "spillover.policy None: nothing moves",
			mutate: func(s *v1alpha1.FleetInferenceService) { s.Spec.Placement.Spillover.Policy = v1alpha1.SpilloverNone },
			obs:    map[string]Observed{"a": full(time.Hour, v1alpha1.ScaleUpFailed, 0), "b": healthy},
			want:   "a=3 b=3 "},
		{name: "out of room does not fail over, however long",
			mutate: func(s *v1alpha1.FleetInferenceService) { s.Spec.Placement.Spillover.Policy = v1alpha1.SpilloverNone },
			obs:    map[string]Observed{"a": {Health: v1alpha1.Degraded, Since: ago(24 * time.Hour), Desired: 3, Scheduled: 0, Unschedulable: 3}, "b": healthy},
			want:   "a=3 b=3 "},
		{name: "nothing scheduled: all spill, the probe stays",
			obs:  map[string]Observed{"a": {Health: v1alpha1.Degraded, Since: ago(time.Hour), Desired: 3, Scheduled: 0, Unschedulable: 3}, "b": healthy},
			want: "a=1 b=6 ", spilled: 3, borrowed: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := failoverService(30*time.Second, 2*time.Minute, v1alpha1.ClusterPlacement{Name: "a"}, v1alpha1.ClusterPlacement{Name: "b"})
			if tc.mutate != nil {
				tc.mutate(svc)
			}
			p, err := Place(svc, three[:2])
			if err != nil {
				t.Fatal(err)
			}
			plan := Decide(svc, p, tc.obs, t0)
			if got := shareString([]string{"a", "b"}, plan.Shares); got != tc.want {
				t.Errorf("shares %s, want %s", got, tc.want)
			}
			if plan.Spilled["a"] != tc.spilled || plan.Borrowed["b"] != tc.borrowed {
				t.Errorf("a spilled %d, b borrowed %d; want %d, %d", plan.Spilled["a"], plan.Borrowed["b"], tc.spilled, tc.borrowed)
			}
			if len(plan.FailedOver) != 0 {
				t.Errorf("failed over %v: capacity must not fail a cluster over", plan.FailedOver)
			}
			if plan.RecheckAfter != tc.recheck {
				t.Errorf("recheck after %v, want %v", plan.RecheckAfter, tc.recheck)
			}
			if !strings.Contains(plan.Reasons["a"], tc.why) {
				t.Errorf("a's reason %q, want it to say %q", plan.Reasons["a"], tc.why)
			}
		})
	}
}

// TestRecordSpill: the decision says who lends, who borrows, how many and why.
func TestRecordSpill(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	svc := failoverService(30*time.Second, 2*time.Minute, v1alpha1.ClusterPlacement{Name: "a"}, v1alpha1.ClusterPlacement{Name: "b"}, v1alpha1.ClusterPlacement{Name: "c"})
	svc.Spec.Replicas = 9
	p, _ := Place(svc, three)
	obs := map[string]Observed{
		"a": {Health: v1alpha1.Degraded, Since: t0.Add(-time.Minute), Desired: 3, Scheduled: 0, Unschedulable: 3, ScaleUp: v1alpha1.ScaleUpFailed},
		"b": {Health: v1alpha1.Healthy, Desired: 3, Ready: 3},
		"c": {Health: v1alpha1.Healthy, Desired: 3, Ready: 3},
	}
	plan := Decide(svc, p, obs, t0)
	st := Record(svc, p, plan, obs, nil, t0)
	got := map[string]v1alpha1.ClusterDecision{}
	for _, d := range st.Clusters {
		got[d.Name] = d
	}
	a, b, c := got["a"], got["b"], got["c"]
	if a.Reason != v1alpha1.PlacementOutOfCapacity || a.Spilled != 3 || a.Replicas != 1 {
		t.Errorf("a: %+v, want OutOfCapacity, 3 spilled, 1 replica (the probe)", a)
	}
	if want := "3 of its replicas run in b, c (unschedulable since 2026-12-01T09:59:00Z, scale-up failed); one stays requested here until there is room"; a.Message != want {
		t.Errorf("a's message %q, want %q", a.Message, want)
	}
	if b.Reason != v1alpha1.PlacementCovering || b.Borrowed != 2 || b.Replicas != 5 || c.Borrowed != 1 || c.Replicas != 4 {
		t.Errorf("b %+v, c %+v: want 2 and 1 borrowed, Covering", b, c)
	}
	if want := "2 more than its share, for a (out of capacity)"; b.Message != want {
		t.Errorf("b's message %q, want %q", b.Message, want)
	}
	if a.Since == nil || !a.Since.Time.Equal(t0) {
		t.Errorf("a since %v", a.Since)
	}
	// The next decision, with the probe still pending, keeps the same since.
	obs["a"] = Observed{Health: v1alpha1.Degraded, Since: t0.Add(-time.Minute), Desired: 1, Unschedulable: 1, Spilled: 3}
	later := t0.Add(time.Minute)
	st2 := Record(svc, p, Decide(svc, p, obs, later), obs, st, later)
	if d, _ := st2.Decision("a"); d.Spilled != 3 || d.Since == nil || !d.Since.Time.Equal(t0) {
		t.Errorf("a later: %+v", d)
	}
}
