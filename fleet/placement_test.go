package fleet

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

func shareString(names []string, shares map[string]int32) string {
	s := ""
	for _, n := range names {
		s += fmt.Sprintf("%s=%d ", n, shares[n])
	}
	return s
}

func TestDistribute(t *testing.T) {
	cases := []struct {
		name     string
		total    int32
		slots    []Slot
		want     string
		unplaced int32
	}{
		{"even", 6, []Slot{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}}, "a=3 b=3 ", 0},
		{"remainder to earlier slots", 7, []Slot{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}, {Name: "c", Weight: 1}}, "a=3 b=2 c=2 ", 0},
		{"by weight", 6, []Slot{{Name: "a", Weight: 2}, {Name: "b", Weight: 1}}, "a=4 b=2 ", 0},
		{"weight 3:1 of 8", 8, []Slot{{Name: "a", Weight: 3}, {Name: "b", Weight: 1}}, "a=6 b=2 ", 0},
		{"min is a floor", 4, []Slot{{Name: "a", Weight: 1, Min: 3}, {Name: "b", Weight: 1}}, "a=3 b=1 ", 0},
		{"max is a cap", 6, []Slot{{Name: "a", Weight: 1, Max: ptr.To[int32](1)}, {Name: "b", Weight: 1}}, "a=1 b=5 ", 0},
		{"weight 0 gets only its min", 5, []Slot{{Name: "a", Weight: 0, Min: 1}, {Name: "b", Weight: 1}}, "a=1 b=4 ", 0},
		{"mins exceed total", 3, []Slot{{Name: "a", Weight: 1, Min: 2}, {Name: "b", Weight: 1, Min: 2}}, "a=2 b=1 ", 0},
		{"caps leave replicas unplaced", 10, []Slot{{Name: "a", Weight: 1, Max: ptr.To[int32](3)}, {Name: "b", Weight: 1, Max: ptr.To[int32](4)}}, "a=3 b=4 ", 3},
		{"zero replicas", 0, []Slot{{Name: "a", Weight: 1}}, "a=0 ", 0},
		{"no slots", 4, nil, "", 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			for _, s := range tc.slots {
				names = append(names, s.Name)
			}
			got, unplaced := Distribute(tc.total, tc.slots)
			if s := shareString(names, got); s != tc.want || unplaced != tc.unplaced {
				t.Errorf("got %s(unplaced %d), want %s(unplaced %d)", s, unplaced, tc.want, tc.unplaced)
			}
			again, _ := Distribute(tc.total, tc.slots)
			if shareString(names, again) != shareString(names, got) {
				t.Error("not deterministic")
			}
		})
	}
}

func failoverService(unhealthyAfter, failbackAfter time.Duration, clusters ...v1alpha1.ClusterPlacement) *v1alpha1.FleetInferenceService {
	s := &v1alpha1.FleetInferenceService{Spec: v1alpha1.FleetInferenceServiceSpec{
		Model:    v1alpha1.ModelSpec{Name: "m"},
		Replicas: 6,
		Placement: v1alpha1.PlacementSpec{Clusters: clusters, Failover: v1alpha1.FailoverSpec{
			UnhealthyAfter: &metav1.Duration{Duration: unhealthyAfter}, FailbackAfter: &metav1.Duration{Duration: failbackAfter},
		}},
	}}
	v1alpha1.SetDefaults(s)
	return s
}

var three = []Cluster{{Name: "a", Region: "r1"}, {Name: "b", Region: "r2"}, {Name: "c", Region: "r3"}}

func TestDecideFailoverAndFailback(t *testing.T) {
	svc := failoverService(30*time.Second, 2*time.Minute, v1alpha1.ClusterPlacement{Name: "a"}, v1alpha1.ClusterPlacement{Name: "b"},
		v1alpha1.ClusterPlacement{Name: "c", MaxReplicas: ptr.To[int32](3)})
	p, err := Place(svc, three)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	healthy := func(desired int32) Observed {
		return Observed{Health: v1alpha1.Healthy, Since: t0.Add(-time.Hour), Desired: desired, Ready: desired}
	}
	names := []string{"a", "b", "c"}

	// a unreachable for 10s: nothing moves yet; recheck when unhealthyAfter expires.
	obs := map[string]Observed{"a": {Health: v1alpha1.Unreachable, Since: t0, Desired: 2, Ready: 2}, "b": healthy(2), "c": healthy(2)}
	plan := Decide(svc, p, obs, t0.Add(10*time.Second))
	if s := shareString(names, plan.Shares); s != "a=2 b=2 c=2 " || len(plan.FailedOver) != 0 || plan.RecheckAfter != 20*time.Second {
		t.Fatalf("before unhealthyAfter: %s failedOver %v recheck %s", s, plan.FailedOver, plan.RecheckAfter)
	}
	// After 30s: a's share goes to b and c (c capped at 3).
	plan = Decide(svc, p, obs, t0.Add(30*time.Second))
	if s := shareString(names, plan.Shares); s != "a=0 b=3 c=3 " || !plan.FailedOver["a"] {
		t.Fatalf("failover: %s %v", s, plan.FailedOver)
	}
	// a back, healthy for 1 minute: stays failed over, recheck at failbackAfter.
	obs = map[string]Observed{"a": {Health: v1alpha1.Healthy, Since: t0.Add(time.Minute), FailedOver: true}, "b": healthy(3), "c": healthy(3)}
	plan = Decide(svc, p, obs, t0.Add(2*time.Minute))
	if s := shareString(names, plan.Shares); s != "a=0 b=3 c=3 " || !plan.FailedOver["a"] || plan.RecheckAfter != time.Minute {
		t.Fatalf("before failbackAfter: %s %v %s", s, plan.FailedOver, plan.RecheckAfter)
	}
	// After failbackAfter: a gets its share back, b and c keep theirs until a is ready.
	plan = Decide(svc, p, obs, t0.Add(3*time.Minute))
	if s := shareString(names, plan.Shares); s != "a=2 b=3 c=3 " || plan.FailedOver["a"] {
		t.Fatalf("failback, make before break: %s %v", s, plan.FailedOver)
	}
	// a ready: the extra goes.
	obs = map[string]Observed{"a": {Health: v1alpha1.Healthy, Since: t0.Add(time.Minute), Desired: 2, Ready: 2}, "b": healthy(3), "c": healthy(3)}
	plan = Decide(svc, p, obs, t0.Add(4*time.Minute))
	if s := shareString(names, plan.Shares); s != "a=2 b=2 c=2 " {
		t.Fatalf("after failback: %s", s)
	}
}

// A date read from status keeps whole seconds: the change came up to a second after it, so
// every timer runs from the end of that second and none fires before its time.
func TestDecideRoundedSinceNeverEarly(t *testing.T) {
	svc := failoverService(30*time.Second, 2*time.Minute, v1alpha1.ClusterPlacement{Name: "a"}, v1alpha1.ClusterPlacement{Name: "b"})
	svc.Spec.Placement.Spillover = v1alpha1.SpilloverSpec{Policy: v1alpha1.SpilloverSpill, After: &metav1.Duration{Duration: 20 * time.Second}}
	p, _ := Place(svc, three[:2])
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	healthy := Observed{Health: v1alpha1.Healthy, Since: t0.Add(-time.Hour), Desired: 3, Ready: 3}
	for _, tc := range []struct {
		name  string
		a     Observed
		at    time.Duration // after t0
		moved bool
		// recheck, when the share has not moved, is when to look again.
		recheck time.Duration
	}{
		{name: "unreachable, exact date", a: Observed{Health: v1alpha1.Unreachable, Since: t0, Desired: 3}, at: 30 * time.Second, moved: true},
		{name: "unreachable, rounded date", a: Observed{Health: v1alpha1.Unreachable, Since: t0, Rounded: true, Desired: 3}, at: 30 * time.Second, recheck: time.Second},
		{name: "unreachable, rounded date, a second on", a: Observed{Health: v1alpha1.Unreachable, Since: t0, Rounded: true, Desired: 3}, at: 31 * time.Second, moved: true},
		{name: "unschedulable, rounded date", a: Observed{Health: v1alpha1.Degraded, Since: t0, Rounded: true, Desired: 3, Ready: 1, Scheduled: 1, Unschedulable: 2}, at: 20 * time.Second, recheck: time.Second},
		{name: "unschedulable, rounded date, a second on", a: Observed{Health: v1alpha1.Degraded, Since: t0, Rounded: true, Desired: 3, Ready: 1, Scheduled: 1, Unschedulable: 2}, at: 21 * time.Second, moved: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := Decide(svc, p, map[string]Observed{"a": tc.a, "b": healthy}, t0.Add(tc.at))
			if moved := plan.Shares["b"] > 3; moved != tc.moved {
				t.Fatalf("moved %v, want %v: shares %v reasons %v", moved, tc.moved, plan.Shares, plan.Reasons)
			}
			if !tc.moved && plan.RecheckAfter != tc.recheck {
				t.Errorf("recheck after %s, want %s", plan.RecheckAfter, tc.recheck)
			}
		})
	}
}

func TestDecideFlappingMovesOnce(t *testing.T) {
	svc := failoverService(10*time.Second, 30*time.Second, v1alpha1.ClusterPlacement{Name: "a"}, v1alpha1.ClusterPlacement{Name: "b"}, v1alpha1.ClusterPlacement{Name: "c"})
	p, _ := Place(svc, three)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	moves := 0
	failedOver := false
	since, health := t0, v1alpha1.Healthy
	// a flips state every 3s for two minutes; the hub decides every second.
	for sec := 0; sec < 120; sec++ {
		now := t0.Add(time.Duration(sec) * time.Second)
		want := v1alpha1.Healthy
		if (sec/3)%2 == 1 {
			want = v1alpha1.Unreachable
		}
		if want != health {
			health, since = want, now
		}
		obs := map[string]Observed{"a": {Health: health, Since: since, FailedOver: failedOver}, "b": {Health: v1alpha1.Healthy}, "c": {Health: v1alpha1.Healthy}}
		plan := Decide(svc, p, obs, now)
		if plan.FailedOver["a"] != failedOver {
			moves++
			failedOver = plan.FailedOver["a"]
		}
	}
	if moves > 1 {
		t.Errorf("a cluster flapping every 3s caused %d moves", moves)
	}
}

func TestDecideCordonAndPolicyNone(t *testing.T) {
	svc := failoverService(time.Hour, time.Hour, v1alpha1.ClusterPlacement{Name: "a"}, v1alpha1.ClusterPlacement{Name: "b"})
	p, _ := Place(svc, three[:2])
	plan := Decide(svc, p, map[string]Observed{"a": {Cordoned: true, Health: v1alpha1.Healthy}}, time.Now())
	if plan.Shares["a"] != 0 || plan.Shares["b"] != 6 || !plan.FailedOver["a"] || plan.Reasons["a"] != "cordoned" {
		t.Errorf("cordon: %v %v", plan.Shares, plan.Reasons)
	}
	svc.Spec.Placement.Failover.Policy = v1alpha1.FailoverNone
	t0 := time.Now()
	plan = Decide(svc, p, map[string]Observed{"a": {Health: v1alpha1.Unreachable, Since: t0.Add(-2 * time.Hour)}}, t0)
	if plan.Shares["a"] != 3 || len(plan.FailedOver) != 0 {
		t.Errorf("policy None moved replicas: %v", plan.Shares)
	}
}

func TestDecideKeepsUnplacedWithFailedOverCluster(t *testing.T) {
	svc := failoverService(time.Second, time.Hour, v1alpha1.ClusterPlacement{Name: "a"}, v1alpha1.ClusterPlacement{Name: "b", MaxReplicas: ptr.To[int32](4)})
	p, _ := Place(svc, three[:2])
	t0 := time.Now()
	plan := Decide(svc, p, map[string]Observed{"a": {Health: v1alpha1.Unreachable, Since: t0.Add(-time.Minute)}, "b": {Health: v1alpha1.Healthy}}, t0)
	if plan.Shares["b"] != 4 || plan.Shares["a"] != 2 || plan.Unplaced != 0 {
		t.Errorf("b is capped at 4: the other 2 must stay with a, got %v unplaced %d", plan.Shares, plan.Unplaced)
	}
}
