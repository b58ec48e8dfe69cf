package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/controllers/render"
)

// modelPod creates a model-server pod of svc in a member: on node, or pending as the
// scheduler leaves a pod it cannot place.
func modelPod(ctx context.Context, t *testing.T, c client.Client, svc *v1alpha1.FleetInferenceService, name, node string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: svc.Namespace, Labels: render.ModelLabels(svc)},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "vllm", Image: "vllm"}}},
	}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if node == "" {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}}
		if err := c.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestSpillover: a member that cannot schedule one of its replicas, for which the cluster
// autoscaler reports a failed scale-up, keeps the one it runs plus the pending one (the
// probe) and the other member runs the missing one, marked borrowed; when the probe is
// scheduled, the replica returns and the borrower lets it go once it is ready.
func TestSpillover(t *testing.T) {
	f := startFleet(t, "west", "east")
	ctx := context.Background()
	hub, west, east := f.hub.Client, f.members["west"].Client, f.members["east"].Client
	svc := routeService("spill", "west", "east")
	svc.Spec.Placement.Spillover.After = &metav1.Duration{Duration: time.Hour} // the failed scale-up must not wait
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)
	replicas := func(c client.Client, want int32) func() error {
		return func() error {
			d, err := getDeployment(ctx, c, "default", "spill")
			if err != nil {
				return err
			}
			if *d.Spec.Replicas != want {
				return fmt.Errorf("model Deployment at %d replicas, want %d", *d.Spec.Replicas, want)
			}
			return nil
		}
	}
	get := func() *v1alpha1.FleetInferenceService {
		got := &v1alpha1.FleetInferenceService{}
		if err := hub.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	eventually(t, 20*time.Second, "west's share", replicas(west, 2))
	eventually(t, 20*time.Second, "east's share", replicas(east, 2))
	markReady(ctx, t, east, "spill", 2)

	modelPod(ctx, t, west, svc, "spill-a", "gpu-node-1")
	pending := modelPod(ctx, t, west, svc, "spill-b", "")
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "spill-b.scaleup", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: pending.Name, UID: pending.UID},
		Reason:         "FailedScaleUp", Type: corev1.EventTypeWarning,
		Message:        "Node scale up in zones us-central1-a associated with this pod failed: GCE out of resources.",
		Source:         corev1.EventSource{Component: "cluster-autoscaler"},
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1,
	}
	if err := west.Create(ctx, ev); err != nil {
		t.Fatal(err)
	}
	markReady(ctx, t, west, "spill", 1)

	eventually(t, 30*time.Second, "west's missing replica spilled to east", func() error {
		got := get()
		if err := decided(got, v1alpha1.PlacementOutOfCapacity, 1, 2, 1, 3); err != nil {
			return err
		}
		st, _ := got.Status.Cluster("west")
		if st.Health != v1alpha1.Degraded || st.ScheduledReplicas != 1 || st.UnschedulableReplicas != 1 || st.ScaleUp != v1alpha1.ScaleUpFailed {
			return fmt.Errorf("west's entry %+v", st)
		}
		return nil
	})
	eventually(t, 20*time.Second, "east runs the borrowed replica", replicas(east, 3))
	if err := replicas(west, 2)(); err != nil {
		t.Errorf("west keeps what it runs and the probe: %v", err)
	}
	if v, _ := gauge(t, "inferfleet_cluster_borrowed_replicas", map[string]string{"namespace": "default", "service": "spill", "cluster": "east"}); v != 1 {
		t.Errorf("borrowed gauge of east = %v, want 1", v)
	}
	if v, _ := gauge(t, "inferfleet_cluster_spilled_replicas", map[string]string{"namespace": "default", "service": "spill", "cluster": "west"}); v != 1 {
		t.Errorf("spilled gauge of west = %v, want 1", v)
	}
	eventually(t, 10*time.Second, "a Spilled event", func() error { return serviceHasEvents(hub, get(), controllers.ReasonSpilled) })

	// Nodes were added: the probe is scheduled and west runs its share again.
	if err := west.Delete(ctx, pending); err != nil {
		t.Fatal(err)
	}
	modelPod(ctx, t, west, svc, "spill-c", "gpu-node-2")
	markReady(ctx, t, west, "spill", 2)
	eventually(t, 30*time.Second, "the replica back in west, east back to its share", func() error {
		return decided(get(), v1alpha1.PlacementPlaced, 0, 2, 0, 2)
	})
	eventually(t, 20*time.Second, "east at its share", replicas(east, 2))
	eventually(t, 10*time.Second, "a CapacityBack event", func() error { return serviceHasEvents(hub, get(), controllers.ReasonCapacityBack) })
}

// decided checks west's decision (reason, spilled, replicas) and east's (borrowed,
// replicas).
func decided(svc *v1alpha1.FleetInferenceService, reason v1alpha1.PlacementReason, spilled, westReplicas, borrowed, eastReplicas int32) error {
	w, _ := svc.Status.Placement.Decision("west")
	e, _ := svc.Status.Placement.Decision("east")
	if w.Reason != reason || w.Spilled != spilled || w.Replicas != westReplicas || e.Borrowed != borrowed || e.Replicas != eastReplicas {
		return fmt.Errorf("decisions west %+v east %+v", w, e)
	}
	return nil
}

// serviceHasEvents checks the service has an event with each reason.
func serviceHasEvents(c client.Client, svc *v1alpha1.FleetInferenceService, reasons ...string) error {
	return hasEvents(c, svc.Namespace, svc.UID, reasons...)
}
