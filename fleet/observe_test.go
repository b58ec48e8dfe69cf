package fleet

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

type fakeReach map[string]Reachability

func (f fakeReach) Get(name string) (Reachability, bool) { r, ok := f[name]; return r, ok }

func TestObserve(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { x := metav1.NewTime(t0.Add(d)); return &x }
	clusters := []Cluster{{Name: "a"}, {Name: "b"}, {Name: "c", Cordoned: true}}
	cases := []struct {
		name  string
		svc   func(*v1alpha1.FleetInferenceService)
		reach Reachabilities
		want  map[string]Observed
	}{{
		name: "nothing recorded yet",
		want: map[string]Observed{"a": {}, "b": {}, "c": {Cordoned: true}},
	}, {
		name: "health from the entries, share and flag from the decision",
		svc: func(s *v1alpha1.FleetInferenceService) {
			s.Status.Clusters = []v1alpha1.ClusterStatus{
				{Name: "a", Health: v1alpha1.Degraded, HealthSince: at(time.Minute), ReadyReplicas: 1, DesiredReplicas: 9, FailedOver: false},
				{Name: "b", Health: v1alpha1.Healthy, HealthSince: at(0), ReadyReplicas: 4},
			}
			s.Status.Placement = &v1alpha1.PlacementStatus{Clusters: []v1alpha1.ClusterDecision{
				{Name: "a", Replicas: 0, Reason: v1alpha1.PlacementFailedOver},
				{Name: "b", Replicas: 4, Reason: v1alpha1.PlacementCovering},
			}}
		},
		want: map[string]Observed{
			"a": {Health: v1alpha1.Degraded, Since: t0.Add(time.Minute), Rounded: true, FailedOver: true, Desired: 0, Ready: 1},
			"b": {Health: v1alpha1.Healthy, Since: t0, Rounded: true, Desired: 4, Ready: 4},
			"c": {Cordoned: true},
		},
	}, {
		name: "entries alone, as written before placement had its own status",
		svc: func(s *v1alpha1.FleetInferenceService) {
			s.Status.Clusters = []v1alpha1.ClusterStatus{{Name: "a", Health: v1alpha1.Unreachable, HealthSince: at(0), DesiredReplicas: 0, FailedOver: true}, {Name: "b", DesiredReplicas: 4, ReadyReplicas: 2}}
		},
		want: map[string]Observed{"a": {Health: v1alpha1.Unreachable, Since: t0, Rounded: true, FailedOver: true}, "b": {Desired: 4, Ready: 2}, "c": {Cordoned: true}},
	}, {
		name: "the service's cordon annotation",
		svc: func(s *v1alpha1.FleetInferenceService) {
			s.Annotations = map[string]string{v1alpha1.AnnotationCordon: " b ,x"}
		},
		want: map[string]Observed{"a": {}, "b": {Cordoned: true}, "c": {Cordoned: true}},
	}, {
		name: "the monitor's loss is fresher than a healthy entry, but keeps an older one",
		svc: func(s *v1alpha1.FleetInferenceService) {
			s.Status.Clusters = []v1alpha1.ClusterStatus{
				{Name: "a", Health: v1alpha1.Healthy, HealthSince: at(0)},
				{Name: "b", Health: v1alpha1.Unreachable, HealthSince: at(time.Second)},
			}
		},
		reach: fakeReach{"a": {Reachable: false, Since: t0.Add(time.Hour)}, "b": {Reachable: false, Since: t0.Add(time.Hour)}, "c": {Reachable: true}},
		want: map[string]Observed{
			"a": {Health: v1alpha1.Unreachable, Since: t0.Add(time.Hour)},
			"b": {Health: v1alpha1.Unreachable, Since: t0.Add(time.Second), Rounded: true},
			"c": {Cordoned: true},
		},
	}, {
		// Status keeps whole seconds: the monitor's date in the same second is the same loss,
		// to the nanosecond.
		name: "the monitor's date refines an entry's in the same second",
		svc: func(s *v1alpha1.FleetInferenceService) {
			s.Status.Clusters = []v1alpha1.ClusterStatus{{Name: "a", Health: v1alpha1.Unreachable, HealthSince: at(time.Minute)}}
		},
		reach: fakeReach{"a": {Reachable: false, Since: t0.Add(time.Minute + 700*time.Millisecond)}},
		want: map[string]Observed{
			"a": {Health: v1alpha1.Unreachable, Since: t0.Add(time.Minute + 700*time.Millisecond)},
			"b": {}, "c": {Cordoned: true},
		},
	}, {
		name: "an entry a failed sync marked unreachable takes the monitor's earlier date",
		svc: func(s *v1alpha1.FleetInferenceService) {
			s.Status.Clusters = []v1alpha1.ClusterStatus{{Name: "a", Health: v1alpha1.Unreachable, HealthSince: at(time.Minute)}}
		},
		reach: fakeReach{"a": {Reachable: false, Since: t0.Add(10 * time.Second)}},
		want: map[string]Observed{
			"a": {Health: v1alpha1.Unreachable, Since: t0.Add(10 * time.Second)},
			"b": {}, "c": {Cordoned: true},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := &v1alpha1.FleetInferenceService{}
			if tc.svc != nil {
				tc.svc(svc)
			}
			got := Observe(svc, clusters, tc.reach)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("observations (-want +got):\n%s", d)
			}
		})
	}
}

func TestRecord(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	since := func(t time.Time) *metav1.Time { x := metav1.NewTime(t); return &x }
	a, b, c := Cluster{Name: "a", Region: "r1"}, Cluster{Name: "b", Region: "r2"}, Cluster{Name: "c", Region: "r3"}
	p := Placement{Selected: []Cluster{a, b, c}, Shares: map[string]int32{"a": 2, "b": 2, "c": 2}, Missing: []string{"gone"}}
	cases := []struct {
		name string
		plan Plan
		obs  map[string]Observed
		prev *v1alpha1.PlacementStatus
		want []v1alpha1.ClusterDecision
	}{{
		name: "placed by weight, a missing cluster named",
		plan: Plan{Shares: map[string]int32{"a": 2, "b": 2, "c": 2}},
		want: []v1alpha1.ClusterDecision{
			{Name: "a", Region: "r1", Replicas: 2, Reason: v1alpha1.PlacementPlaced, Since: since(now)},
			{Name: "b", Region: "r2", Replicas: 2, Reason: v1alpha1.PlacementPlaced, Since: since(now)},
			{Name: "c", Region: "r3", Replicas: 2, Reason: v1alpha1.PlacementPlaced, Since: since(now)},
			{Name: "gone", Reason: v1alpha1.PlacementNotRegistered, Message: "cluster is not registered with the hub", Since: since(now)},
		},
	}, {
		name: "failed over and cordoned; the others cover; since kept where nothing changed",
		plan: Plan{Shares: map[string]int32{"a": 0, "b": 6, "c": 0}, FailedOver: map[string]bool{"a": true, "c": true}, Reasons: map[string]string{"a": "unreachable since x", "c": "cordoned"}},
		obs:  map[string]Observed{"c": {Cordoned: true}},
		prev: &v1alpha1.PlacementStatus{Clusters: []v1alpha1.ClusterDecision{
			{Name: "a", Replicas: 0, Reason: v1alpha1.PlacementFailedOver, Since: since(t0)},
			{Name: "b", Replicas: 4, Reason: v1alpha1.PlacementCovering, Since: since(t0)},
			{Name: "gone", Reason: v1alpha1.PlacementNotRegistered, Since: since(t0)},
		}},
		want: []v1alpha1.ClusterDecision{
			{Name: "a", Region: "r1", Replicas: 0, Reason: v1alpha1.PlacementFailedOver, Message: "unreachable since x", Since: since(t0)},
			{Name: "b", Region: "r2", Replicas: 6, Reason: v1alpha1.PlacementCovering, Message: "4 more than its share, for a, c", Since: since(now)},
			{Name: "c", Region: "r3", Replicas: 0, Reason: v1alpha1.PlacementCordoned, Message: "cordoned", Since: since(now)},
			{Name: "gone", Reason: v1alpha1.PlacementNotRegistered, Message: "cluster is not registered with the hub", Since: since(t0)},
		},
	}, {
		name: "make before break: keeps extra until the one failing back is ready",
		plan: Plan{Shares: map[string]int32{"a": 2, "b": 4, "c": 2}},
		obs:  map[string]Observed{"a": {Ready: 0}, "b": {Ready: 4}, "c": {Ready: 2}},
		want: []v1alpha1.ClusterDecision{
			{Name: "a", Region: "r1", Replicas: 2, Reason: v1alpha1.PlacementPlaced, Since: since(now)},
			{Name: "b", Region: "r2", Replicas: 4, Reason: v1alpha1.PlacementCovering, Message: "keeps 2 more than its share until a has its share ready", Since: since(now)},
			{Name: "c", Region: "r3", Replicas: 2, Reason: v1alpha1.PlacementPlaced, Since: since(now)},
			{Name: "gone", Reason: v1alpha1.PlacementNotRegistered, Message: "cluster is not registered with the hub", Since: since(now)},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := &v1alpha1.FleetInferenceService{}
			svc.Generation = 7
			got := Record(svc, p, tc.plan, tc.obs, tc.prev, now)
			if got.ObservedGeneration != 7 {
				t.Errorf("observedGeneration %d, want 7", got.ObservedGeneration)
			}
			if d := cmp.Diff(tc.want, got.Clusters); d != "" {
				t.Errorf("decisions (-want +got):\n%s", d)
			}
			for _, d := range got.Clusters {
				if want := d.Reason == v1alpha1.PlacementFailedOver || d.Reason == v1alpha1.PlacementCordoned; d.FailedOver() != want {
					t.Errorf("%s: FailedOver() = %v", d.Name, d.FailedOver())
				}
			}
		})
	}
}
