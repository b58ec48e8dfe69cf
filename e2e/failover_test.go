package e2e

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/internal/localfleet"
)

const (
	unhealthyAfter = 10 * time.Second
	failbackAfter  = 15 * time.Second
	spillAfter     = 5 * time.Second
)

// shares reads each cluster's desired and ready replicas and whether it is failed over.
func shares(ctx context.Context, t *testing.T, hub client.Client, key client.ObjectKey) (map[string]v1alpha1.ClusterStatus, *v1alpha1.FleetInferenceService) {
	t.Helper()
	svc := getService(ctx, t, hub, key)
	out := map[string]v1alpha1.ClusterStatus{}
	for _, c := range svc.Status.Clusters {
		out[c.Name] = c
	}
	return out, svc
}

// expectShares waits until every cluster runs want replicas, ready.
func expectShares(ctx context.Context, t *testing.T, hub client.Client, key client.ObjectKey, timeout time.Duration, what string, want map[string]int32) time.Duration {
	t.Helper()
	start := time.Now()
	framework.Eventually(t, timeout, what, func() error {
		got, svc := shares(ctx, t, hub, key)
		for name, n := range want {
			c := got[name]
			if c.DesiredReplicas != n || (n > 0 && c.ReadyReplicas != n) {
				return fmt.Errorf("%s: desired %d ready %d, want %d (all: %+v)", name, c.DesiredReplicas, c.ReadyReplicas, n, got)
			}
		}
		return rolledUp(svc)
	})
	return time.Since(start)
}

// rolledUp: the service's totals and conditions describe its clusters' entries (each
// member writes its own entry; the hub rolls them up in a later write).
func rolledUp(svc *v1alpha1.FleetInferenceService) error {
	var ready int32
	for _, c := range svc.Status.Clusters {
		ready += min(c.ReadyReplicas, c.DesiredReplicas)
	}
	if svc.Status.ReadyReplicas != ready {
		return fmt.Errorf("status not rolled up yet: readyReplicas %d, the clusters' entries %d", svc.Status.ReadyReplicas, ready)
	}
	return nil
}

// expectPlaced waits until every cluster is given want replicas (placement, not readiness).
func expectPlaced(ctx context.Context, t *testing.T, hub client.Client, key client.ObjectKey, timeout time.Duration, what string, want map[string]int32) time.Duration {
	t.Helper()
	start := time.Now()
	framework.Eventually(t, timeout, what, func() error {
		got, _ := shares(ctx, t, hub, key)
		for name, n := range want {
			if got[name].DesiredReplicas != n {
				return fmt.Errorf("%s: desired %d, want %d", name, got[name].DesiredReplicas, n)
			}
		}
		return nil
	})
	return time.Since(start)
}

// TestRegionFailover runs the failover acceptance on three members: a region drill end to
// end, a member losing its GPU nodes while a cluster-autoscaler scale-up is under way (its
// replicas wait for the nodes past spillover.after), a member losing its GPU nodes while its
// API is up (its replicas spill to the others and return with the nodes), a flapping member that moves
// nothing more than once, and a member's API server killed (share redistributed within
// unhealthyAfter + 15s, nothing deleted, failback after failbackAfter). The kill comes last:
// a member whose API server was restarted here is slow to start new kwok pods.
func TestRegionFailover(t *testing.T) {
	lf := framework.StartFleet(t, []localfleet.ClusterSpec{
		localfleet.DefaultMember("gke-west", "europe-west3"),
		localfleet.DefaultMember("gke-east", "us-east4"),
		localfleet.DefaultMember("gke-central", "us-central1"),
	})
	lf.RunHub(t, app.HubOptions{MemberTimeout: 3 * time.Second, ProbeInterval: time.Second})
	ctx := context.Background()
	hub := lf.HubProxy().Client

	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	svc.Name = "failover"
	svc.Spec.Model.Server.HuggingFaceTokenSecretRef = nil
	svc.Spec.Placement.Clusters = []v1alpha1.ClusterPlacement{{Name: "gke-west"}, {Name: "gke-east"}, {Name: "gke-central"}}
	svc.Spec.Placement.Failover = v1alpha1.FailoverSpec{
		Policy:         v1alpha1.FailoverRedistribute,
		UnhealthyAfter: &metav1.Duration{Duration: unhealthyAfter},
		FailbackAfter:  &metav1.Duration{Duration: failbackAfter},
	}
	svc.Spec.Placement.Spillover.After = &metav1.Duration{Duration: spillAfter}
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)
	expectShares(ctx, t, hub, key, 30*time.Second, "initial spread", map[string]int32{"gke-west": 2, "gke-east": 2, "gke-central": 2})

	t.Run("a region drill end to end", func(t *testing.T) {
		drill := &v1alpha1.FailoverDrill{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "drill-gke-central-", Namespace: "default"},
			Spec:       v1alpha1.FailoverDrillSpec{Cluster: "gke-central", Service: svc.Name, Timeout: &metav1.Duration{Duration: 90 * time.Second}},
		}
		if err := hub.Create(ctx, drill); err != nil {
			t.Fatal(err)
		}
		// Each half is bounded by the drill's timeout; the hub fails the drill past it.
		done := &v1alpha1.FailoverDrill{}
		framework.Eventually(t, 4*time.Minute, "drill finished", func() error {
			if err := hub.Get(ctx, client.ObjectKeyFromObject(drill), done); err != nil {
				return err
			}
			if !done.Status.Phase.Finished() {
				return fmt.Errorf("phase %q", done.Status.Phase)
			}
			return nil
		})
		st := done.Status
		if st.Phase == v1alpha1.DrillFailed {
			t.Fatalf("drill failed: %s", st.Message)
		}
		if st.Phase != v1alpha1.DrillSucceeded || st.TimeToRecover == nil || st.TimeToFailback == nil || len(st.Services) != 1 {
			t.Fatalf("report %+v", st)
		}
		if !meta.IsStatusConditionTrue(st.Conditions, v1alpha1.DrillConditionRecovered) || !meta.IsStatusConditionTrue(st.Conditions, v1alpha1.DrillConditionSucceeded) {
			t.Errorf("conditions of a drill that succeeded: %+v", st.Conditions)
		}
		rep := st.Services[0]
		before := []v1alpha1.DrillClusterShare{{Cluster: "gke-central", Replicas: 2}, {Cluster: "gke-east", Replicas: 2}, {Cluster: "gke-west", Replicas: 2}}
		during := []v1alpha1.DrillClusterShare{{Cluster: "gke-central", Replicas: 0}, {Cluster: "gke-east", Replicas: 3}, {Cluster: "gke-west", Replicas: 3}}
		if !slices.Equal(rep.Before, before) || !slices.Equal(rep.During, during) {
			t.Errorf("moved: before %+v during %+v", rep.Before, rep.During)
		}
		t.Logf("drill: recovered in %s, failed back in %s", st.TimeToRecover.Duration, st.TimeToFailback.Duration)
		got, full := shares(ctx, t, hub, key)
		if full.Annotations[v1alpha1.AnnotationCordon] != "" || got["gke-central"].FailedOver {
			t.Errorf("cordon left behind: %v %+v", full.Annotations, got["gke-central"])
		}
	})
	t.Run("GPU nodes lost while a scale-up is under way: the replicas wait for it", func(t *testing.T) {
		const after = 30 * time.Second
		framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Placement.Spillover.After = &metav1.Duration{Duration: after}
		})
		defer framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Placement.Spillover.After = &metav1.Duration{Duration: spillAfter}
		})
		east := lf.Member("gke-east")
		removed, err := east.Faults.RemoveNodes(ctx, map[string]string{localfleet.LabelGKEAccelerator: "nvidia-h100-80gb"})
		if err != nil || len(removed) == 0 {
			t.Fatalf("remove nodes: %v %v", removed, err)
		}
		gone := time.Now()
		// As the cluster autoscaler does: TriggeredScaleUp on each model-server pod it
		// makes room for.
		noted := map[string]bool{}
		framework.Eventually(t, time.Minute, "east's model-server pods pending, each with a TriggeredScaleUp", func() error {
			var pods corev1.PodList
			if err := east.Client.List(ctx, &pods, client.InNamespace(key.Namespace), client.MatchingLabels(render.ModelLabels(svc))); err != nil {
				return err
			}
			pending := 0
			for _, p := range pods.Items {
				if p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
					continue
				}
				pending++
				if noted[p.Name] {
					continue
				}
				now := metav1.Now()
				ev := &corev1.Event{
					ObjectMeta:     metav1.ObjectMeta{Name: p.Name + ".scaleup", Namespace: p.Namespace},
					InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
					Reason:         "TriggeredScaleUp", Type: corev1.EventTypeNormal,
					Message:        "pod triggered scale-up: [{https://www.googleapis.com/compute/v1/projects/p/zones/us-east4-a/instanceGroups/h100-pool 0->2 (max: 4)}]",
					Source:         corev1.EventSource{Component: "cluster-autoscaler"},
					FirstTimestamp: now, LastTimestamp: now, Count: 1,
				}
				if err := east.Client.Create(ctx, ev); err != nil {
					return err
				}
				noted[p.Name] = true
			}
			if pending < 2 {
				return fmt.Errorf("%d model-server pods pending, want 2", pending)
			}
			return nil
		})
		framework.Eventually(t, 30*time.Second, "east's entry says a scale-up is under way", func() error {
			got, _ := shares(ctx, t, hub, key)
			if e := got["gke-east"]; e.ScaleUp != v1alpha1.ScaleUpTriggered || e.UnschedulableReplicas < 2 {
				return fmt.Errorf("east's entry: scaleUp %q, %d unschedulable", e.ScaleUp, e.UnschedulableReplicas)
			}
			return nil
		})
		// Past spillover.after, the replicas still wait for the nodes.
		time.Sleep(time.Until(gone.Add(after + 10*time.Second)))
		full := getService(ctx, t, hub, key)
		for _, name := range []string{"gke-west", "gke-east", "gke-central"} {
			if d, _ := full.Status.Placement.Decision(name); d.Replicas != 2 || d.Spilled != 0 || d.Borrowed != 0 {
				t.Errorf("%s's decision %+v while the scale-up is under way: want its 2, nothing spilled or borrowed", name, d)
			}
		}
		// The scale-up brings the nodes: the pods run there, and nothing moved.
		if err := east.Faults.RestoreNodes(ctx); err != nil {
			t.Fatal(err)
		}
		expectShares(ctx, t, hub, key, time.Minute, "east's replicas on the new nodes",
			map[string]int32{"gke-west": 2, "gke-east": 2, "gke-central": 2})
	})

	t.Run("GPU nodes lost while the API is up: the replicas spill, and return", func(t *testing.T) {
		east := lf.Member("gke-east").Faults
		removed, err := east.RemoveNodes(ctx, map[string]string{localfleet.LabelGKEAccelerator: "nvidia-h100-80gb"})
		if err != nil || len(removed) == 0 {
			t.Fatalf("remove nodes: %v %v", removed, err)
		}
		took := expectShares(ctx, t, hub, key, spillAfter+30*time.Second, "spilled after capacity loss",
			map[string]int32{"gke-west": 3, "gke-central": 3})
		t.Logf("capacity spilled %s after the nodes went", took.Round(100*time.Millisecond))
		full := getService(ctx, t, hub, key)
		d, _ := full.Status.Placement.Decision("gke-east")
		if d.Reason != v1alpha1.PlacementOutOfCapacity || d.Spilled != 2 || d.Replicas != 1 {
			t.Errorf("east's decision %+v: want OutOfCapacity, 2 spilled, the probe requested", d)
		}
		for _, name := range []string{"gke-west", "gke-central"} {
			if d, _ := full.Status.Placement.Decision(name); d.Borrowed != 1 {
				t.Errorf("%s's decision %+v: want 1 borrowed", name, d)
			}
		}
		got, _ := shares(ctx, t, hub, key)
		if e := got["gke-east"]; e.FailedOver || !e.Reachable || e.Health != v1alpha1.Degraded || e.UnschedulableReplicas == 0 {
			t.Errorf("east status %+v: want reachable, Degraded, not failed over, its pods unschedulable", e)
		}
		if err := east.RestoreNodes(ctx); err != nil {
			t.Fatal(err)
		}
		expectShares(ctx, t, hub, key, 60*time.Second, "the spilled replicas back after capacity returned",
			map[string]int32{"gke-west": 2, "gke-east": 2, "gke-central": 2})
		if d, _ := getService(ctx, t, hub, key).Status.Placement.Decision("gke-east"); d.Spilled != 0 || d.Reason != v1alpha1.PlacementPlaced {
			t.Errorf("east's decision after capacity returned %+v", d)
		}
	})

	t.Run("a flapping member moves at most once", func(t *testing.T) {
		west := lf.Member("gke-west").Faults
		moves, failedOver := 0, false
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(300 * time.Millisecond):
				}
				got, _ := shares(ctx, t, hub, key)
				if fo := got["gke-west"].FailedOver; fo != failedOver {
					moves++
					failedOver = fo
				}
			}
		}()
		for i := 0; i < 4; i++ {
			if err := west.HangAPIServer(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			if err := west.ResumeAPIServer(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
		}
		close(stop)
		<-done
		if moves > 1 {
			t.Errorf("a member flapping every few seconds caused %d moves", moves)
		}
		expectShares(ctx, t, hub, key, failbackAfter+30*time.Second, "steady after flapping",
			map[string]int32{"gke-west": 2, "gke-east": 2, "gke-central": 2})
	})

	t.Run("API server killed: failover, then failback", func(t *testing.T) {
		central := lf.Member("gke-central")
		if err := central.Faults.StopAPIServer(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		took := expectPlaced(ctx, t, hub, key, unhealthyAfter+15*time.Second, "redistributed",
			map[string]int32{"gke-west": 3, "gke-east": 3, "gke-central": 0})
		t.Logf("capacity redistributed %s after the kill", took.Round(100*time.Millisecond))
		// New pods start on gke-west, whose control plane restarted four times a minute ago
		// (the flapping test): on a loaded 2-core machine that can take over 30s. What the
		// failover promises, the placement, is checked above.
		took = expectShares(ctx, t, hub, key, 60*time.Second, "ready in the other regions",
			map[string]int32{"gke-west": 3, "gke-east": 3, "gke-central": 0})
		t.Logf("the other regions ready %s later", took.Round(100*time.Millisecond))
		got, full := shares(ctx, t, hub, key)
		if !got["gke-central"].FailedOver || got["gke-central"].Health != v1alpha1.Unreachable {
			t.Errorf("central status %+v", got["gke-central"])
		}
		if c := meta.FindStatusCondition(full.Status.Conditions, v1alpha1.ConditionFailingOver); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("FailingOver %+v", c)
		}
		if c := meta.FindStatusCondition(full.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("the other regions carry every replica, yet Ready is %+v", c)
		}

		restarted := time.Now()
		if err := central.Faults.StartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		// Nothing was deleted in the lost member while it was away.
		if _, err := modelDeployment(ctx, central.Client, key); err != nil {
			t.Fatalf("model Deployment gone from the returning member: %v", err)
		}
		// No failback before failbackAfter of continuous health.
		time.Sleep(failbackAfter / 2)
		if got, _ := shares(ctx, t, hub, key); !got["gke-central"].FailedOver {
			t.Fatalf("failed back %s after return, before failbackAfter (%s)", time.Since(restarted).Round(time.Second), failbackAfter)
		}
		expectShares(ctx, t, hub, key, failbackAfter+20*time.Second, "failed back",
			map[string]int32{"gke-west": 2, "gke-east": 2, "gke-central": 2})
		t.Logf("failed back %s after the API server returned", time.Since(restarted).Round(100*time.Millisecond))
		_, full = shares(ctx, t, hub, key)
		if c := meta.FindStatusCondition(full.Status.Conditions, v1alpha1.ConditionFailingOver); c == nil || c.Status != metav1.ConditionFalse {
			t.Errorf("FailingOver after failback %+v", c)
		}
	})

}
