package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

// TestRollup checks the service conditions and totals built from the placement decision
// and the per-cluster entries, without an API server.
func TestRollup(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	placed := func(name string, n int32) v1alpha1.ClusterDecision {
		return v1alpha1.ClusterDecision{Name: name, Replicas: n, Reason: v1alpha1.PlacementPlaced}
	}
	synced := func(name string, desired, ready int32) v1alpha1.ClusterStatus {
		return v1alpha1.ClusterStatus{Name: name, ObservedGeneration: 3, Reason: ReasonSynced, Reachable: true, DesiredReplicas: desired, ReadyReplicas: ready}
	}
	with := func(st v1alpha1.ClusterStatus, f func(*v1alpha1.ClusterStatus)) v1alpha1.ClusterStatus {
		f(&st)
		return st
	}
	cases := []struct {
		name                   string
		decisions              []v1alpha1.ClusterDecision
		entries                []v1alpha1.ClusterStatus
		propagated             metav1.ConditionStatus
		propReason, propMsg    string
		degraded               metav1.ConditionStatus
		degradedReason         string
		replicas, ready        int32
		replicasReady, clReady string
		readyStatus            metav1.ConditionStatus
		readyReason            string
	}{{
		name:       "all synced and ready",
		decisions:  []v1alpha1.ClusterDecision{placed("a", 2), placed("b", 1)},
		entries:    []v1alpha1.ClusterStatus{synced("a", 2, 2), synced("b", 1, 1)},
		propagated: metav1.ConditionTrue, propReason: ReasonAllSynced, propMsg: "2 clusters in sync",
		degraded: metav1.ConditionFalse, degradedReason: ReasonAsExpected,
		replicas: 3, ready: 3, replicasReady: "3/3", clReady: "2/2",
		readyStatus: metav1.ConditionTrue, readyReason: ReasonReplicasReady,
	}, {
		name:       "an entry of an older generation is still syncing",
		decisions:  []v1alpha1.ClusterDecision{placed("a", 2), placed("b", 1)},
		entries:    []v1alpha1.ClusterStatus{synced("a", 2, 2), with(synced("b", 1, 1), func(s *v1alpha1.ClusterStatus) { s.ObservedGeneration = 2 })},
		propagated: metav1.ConditionFalse, propReason: ReasonSyncing, propMsg: "syncing to: b",
		degraded: metav1.ConditionFalse, degradedReason: ReasonAsExpected,
		replicas: 3, ready: 3, replicasReady: "3/3", clReady: "1/2",
		readyStatus: metav1.ConditionFalse, readyReason: ReasonSyncing,
	}, {
		name:       "an entry with another share than decided is still syncing",
		decisions:  []v1alpha1.ClusterDecision{placed("a", 3)},
		entries:    []v1alpha1.ClusterStatus{synced("a", 2, 2)},
		propagated: metav1.ConditionFalse, propReason: ReasonSyncing, propMsg: "syncing to: a",
		degraded: metav1.ConditionFalse, degradedReason: ReasonAsExpected,
		replicas: 3, ready: 2, replicasReady: "2/3", clReady: "0/1",
		readyStatus: metav1.ConditionFalse, readyReason: ReasonSyncing,
	}, {
		name:      "unreachable comes before conflict, and both degrade",
		decisions: []v1alpha1.ClusterDecision{placed("a", 1), placed("b", 1), placed("c", 1)},
		entries: []v1alpha1.ClusterStatus{
			with(synced("a", 1, 0), func(s *v1alpha1.ClusterStatus) { s.Reason, s.Reachable = ReasonUnreachable, false }),
			with(synced("b", 1, 1), func(s *v1alpha1.ClusterStatus) { s.Reason = ReasonConflict }),
			synced("c", 1, 1),
		},
		propagated: metav1.ConditionFalse, propReason: ReasonUnreachable, propMsg: "unreachable: a",
		degraded: metav1.ConditionTrue, degradedReason: ReasonUnreachable,
		replicas: 3, ready: 2, replicasReady: "2/3", clReady: "1/3",
		readyStatus: metav1.ConditionFalse, readyReason: ReasonUnreachable,
	}, {
		name:       "sync failure",
		decisions:  []v1alpha1.ClusterDecision{placed("a", 1)},
		entries:    []v1alpha1.ClusterStatus{with(synced("a", 1, 0), func(s *v1alpha1.ClusterStatus) { s.Reason = ReasonSyncFailed })},
		propagated: metav1.ConditionFalse, propReason: ReasonSyncFailed, propMsg: "sync failed in: a (see status.clusters)",
		degraded: metav1.ConditionTrue, degradedReason: ReasonSyncFailed,
		replicas: 1, ready: 0, replicasReady: "0/1", clReady: "0/1",
		readyStatus: metav1.ConditionFalse, readyReason: ReasonSyncFailed,
	}, {
		name: "a failed-over cluster degrades but does not block propagation",
		decisions: []v1alpha1.ClusterDecision{
			{Name: "a", Replicas: 0, Reason: v1alpha1.PlacementFailedOver, Message: "unreachable"},
			{Name: "b", Replicas: 2, Reason: v1alpha1.PlacementCovering},
		},
		entries: []v1alpha1.ClusterStatus{
			with(synced("a", 0, 0), func(s *v1alpha1.ClusterStatus) { s.Reason, s.FailedOver = ReasonUnreachable, true }),
			synced("b", 2, 1),
		},
		propagated: metav1.ConditionTrue, propReason: ReasonAllSynced, propMsg: "2 clusters in sync",
		degraded: metav1.ConditionTrue, degradedReason: ReasonFailingOver,
		replicas: 2, ready: 1, replicasReady: "1/2", clReady: "0/2",
		readyStatus: metav1.ConditionFalse, readyReason: ReasonReplicasPending,
	}, {
		name:       "only unregistered clusters",
		decisions:  []v1alpha1.ClusterDecision{{Name: "x", Reason: v1alpha1.PlacementNotRegistered}},
		propagated: metav1.ConditionFalse, propReason: ReasonNotRegistered, propMsg: "selected clusters are not registered: x",
		degraded: metav1.ConditionFalse, degradedReason: ReasonAsExpected,
		replicas: 0, ready: 0, replicasReady: "0/0", clReady: "0/0",
		readyStatus: metav1.ConditionFalse, readyReason: ReasonNotRegistered,
	}, {
		name:       "nothing selected",
		propagated: metav1.ConditionFalse, propReason: ReasonNoClusters, propMsg: "placement selects no registered cluster",
		degraded: metav1.ConditionFalse, degradedReason: ReasonAsExpected,
		replicasReady: "0/0", clReady: "0/0",
		readyStatus: metav1.ConditionFalse, readyReason: ReasonNoClusters,
	}, {
		name:       "connecting",
		decisions:  []v1alpha1.ClusterDecision{placed("a", 1)},
		entries:    []v1alpha1.ClusterStatus{with(synced("a", 1, 1), func(s *v1alpha1.ClusterStatus) { s.Reason = ReasonConnecting })},
		propagated: metav1.ConditionFalse, propReason: ReasonConnecting, propMsg: "the hub is connecting to: a",
		degraded: metav1.ConditionFalse, degradedReason: ReasonAsExpected,
		replicas: 1, ready: 1, replicasReady: "1/1", clReady: "0/1",
		readyStatus: metav1.ConditionFalse, readyReason: ReasonConnecting,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := &v1alpha1.FleetInferenceService{}
			svc.Generation = 3
			svc.Status.Placement = &v1alpha1.PlacementStatus{ObservedGeneration: 3, Clusters: tc.decisions}
			svc.Status.Clusters = tc.entries
			rollup(svc, now)
			summarizeReady(svc, now)
			check := func(typ string, status metav1.ConditionStatus, reason, msg string) {
				t.Helper()
				c := meta.FindStatusCondition(svc.Status.Conditions, typ)
				if c == nil || c.Status != status || c.Reason != reason || (msg != "" && c.Message != msg) || c.ObservedGeneration != 3 {
					t.Errorf("%s = %+v, want %s %s %q", typ, c, status, reason, msg)
				}
			}
			check(v1alpha1.ConditionPropagated, tc.propagated, tc.propReason, tc.propMsg)
			check(v1alpha1.ConditionDegraded, tc.degraded, tc.degradedReason, "")
			check(v1alpha1.ConditionReady, tc.readyStatus, tc.readyReason, "")
			if s := svc.Status; s.Replicas != tc.replicas || s.ReadyReplicas != tc.ready || s.ReplicasReady != tc.replicasReady || s.ClustersReady != tc.clReady {
				t.Errorf("totals %d/%d %q %q, want %d/%d %q %q", s.ReadyReplicas, s.Replicas, s.ReplicasReady, s.ClustersReady, tc.ready, tc.replicas, tc.replicasReady, tc.clReady)
			}
		})
	}
}

func TestFailoverCondition(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		p       v1alpha1.PlacementStatus
		status  metav1.ConditionStatus
		reason  string
		message string
	}{{
		name:   "all serving",
		p:      v1alpha1.PlacementStatus{Clusters: []v1alpha1.ClusterDecision{{Name: "a", Replicas: 1, Reason: v1alpha1.PlacementPlaced}}},
		status: metav1.ConditionFalse, reason: ReasonAllServing, message: "every selected cluster runs its share",
	}, {
		name: "one cordoned",
		p: v1alpha1.PlacementStatus{Clusters: []v1alpha1.ClusterDecision{
			{Name: "west", Replicas: 0, Reason: v1alpha1.PlacementCordoned, Message: "cordoned"},
			{Name: "east", Replicas: 4, Reason: v1alpha1.PlacementCovering},
			{Name: "gone", Reason: v1alpha1.PlacementNotRegistered},
		}},
		status: metav1.ConditionTrue, reason: ReasonCordoned, message: "share moved away from west (cordoned); now east=4, west=0",
	}, {
		name: "two failed over, some unplaced",
		p: v1alpha1.PlacementStatus{Unplaced: 2, Clusters: []v1alpha1.ClusterDecision{
			{Name: "b", Replicas: 1, Reason: v1alpha1.PlacementFailedOver, Message: "unreachable since t"},
			{Name: "a", Replicas: 1, Reason: v1alpha1.PlacementCordoned, Message: "cordoned"},
			{Name: "c", Replicas: 3, Reason: v1alpha1.PlacementCovering},
		}},
		status: metav1.ConditionTrue, reason: ReasonFailingOver, message: "share moved away from a (cordoned), b (unreachable since t); now a=1, b=1, c=3; 2 replicas fit no healthy cluster",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := &v1alpha1.FleetInferenceService{}
			svc.Status.Placement = &tc.p
			failoverCondition(svc, now)
			c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionFailingOver)
			if c == nil || c.Status != tc.status || c.Reason != tc.reason || c.Message != tc.message {
				t.Errorf("FailingOver = %+v, want %s %s %q", c, tc.status, tc.reason, tc.message)
			}
		})
	}
}

// TestEntryWhileConnecting: a restarted hub that has not connected to a member yet keeps
// the member's recorded entry as it is; the rollup then says what that record says: in
// sync when it was for this generation and share, syncing when the spec or the share
// changed while the hub was away. A hub with no record says it is connecting.
func TestEntryWhileConnecting(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	r := &MemberSync{Now: func() time.Time { return now }}
	since := metav1.NewTime(now.Add(-time.Hour))
	recorded := v1alpha1.ClusterStatus{Name: "a", ObservedGeneration: 1, Reason: ReasonSynced, Reachable: true, DesiredReplicas: 2, ReadyReplicas: 2,
		Health: v1alpha1.Healthy, HealthSince: &since, LastSyncTime: &since}
	pending := pendingResult(fleet.Cluster{Name: "a"}, 2)
	for _, tc := range []struct {
		name       string
		generation int64
		share      int32
		had        bool
		propagated string
	}{
		{"recorded for this generation and share", 1, 2, true, ReasonAllSynced},
		{"spec changed while the hub was away", 2, 2, true, ReasonSyncing},
		{"share changed while the hub was away", 1, 3, true, ReasonSyncing},
		{"nothing recorded", 1, 2, false, ReasonConnecting},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &v1alpha1.FleetInferenceService{}
			svc.Generation = tc.generation
			d := v1alpha1.ClusterDecision{Name: "a", Replicas: tc.share, Reason: v1alpha1.PlacementPlaced}
			prev := v1alpha1.ClusterStatus{}
			if tc.had {
				prev = recorded
			}
			got := r.entry(svc, d, prev, tc.had, pending)
			if tc.had && !equality.Semantic.DeepEqual(got, recorded) {
				t.Errorf("entry %+v, want the recorded %+v", got, recorded)
			}
			svc.Status.Placement = &v1alpha1.PlacementStatus{ObservedGeneration: tc.generation, Clusters: []v1alpha1.ClusterDecision{d}}
			svc.Status.Clusters = []v1alpha1.ClusterStatus{got}
			rollup(svc, now)
			if c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionPropagated); c == nil || c.Reason != tc.propagated {
				t.Errorf("Propagated %+v, want reason %s", c, tc.propagated)
			}
		})
	}
}
