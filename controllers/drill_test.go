package controllers_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/e2e/framework"
)

// TestDrill runs the drill state machine alone against a real API server: the test plays
// MemberSync's part by writing the services' status by hand.
func TestDrill(t *testing.T) {
	env := framework.Start(t, framework.CRDs())
	framework.StartDrillController(t, env)
	c := env.Client

	t.Run("RecoversAndFailsBack", func(t *testing.T) {
		ns := drillNamespace(t, c, "drill-ok")
		// Another cluster cordoned by someone else stays cordoned through the drill.
		llama := drillService(t, c, ns, "llama", "north")
		drillSetStatus(t, c, llama, drillCluster("east", 3, 3), drillCluster("west", 3, 3))
		// Not on west: not drilled.
		other := drillService(t, c, ns, "other", "")
		drillSetStatus(t, c, other, drillCluster("east", 2, 2))

		recBefore := drillObserved(t, "west", "recover", "Succeeded")
		fbBefore := drillObserved(t, "west", "failback", "Succeeded")
		totalBefore := drillObserved(t, "west", "total", "Succeeded")
		drill := drillCreate(t, c, ns, "west", "", 30*time.Second)
		drillWait(t, c, drill, 10*time.Second, "cordon on and Draining", func(d *v1alpha1.FailoverDrill) error {
			if d.Status.Phase != v1alpha1.DrillDraining {
				return fmt.Errorf("phase %q", d.Status.Phase)
			}
			return drillCordonIs(c, llama, "north,west")
		})
		if got := drillCordon(t, c, other); got != "" {
			t.Errorf("service not on west was cordoned: %q", got)
		}
		d := drillGet(t, c, drill)
		if want := []v1alpha1.DrillServiceReport{{Name: "llama", Before: []v1alpha1.DrillClusterShare{{Cluster: "east", Replicas: 3}, {Cluster: "west", Replicas: 3}}}}; !drillReportsEqual(d.Status.Services, want) {
			t.Errorf("services = %+v, want %+v", d.Status.Services, want)
		}
		if d.Status.StartTime == nil || !slices.Contains(d.Finalizers, controllers.DrillFinalizer) {
			t.Errorf("running drill lacks start time or finalizer: %+v %v", d.Status, d.Finalizers)
		}
		if err := drillConditions(d, drillCond{v1alpha1.DrillConditionRecovered, metav1.ConditionFalse, "Draining"},
			drillCond{v1alpha1.DrillConditionSucceeded, metav1.ConditionUnknown, "Draining"}); err != nil {
			t.Error(err)
		}

		// MemberSync moved west's share to east, not all of it ready yet: not recovered.
		drillSetStatus(t, c, llama, drillCluster("east", 6, 4), drillFailedOver("west"))
		time.Sleep(1500 * time.Millisecond)
		if d := drillGet(t, c, drill); d.Status.Phase != v1alpha1.DrillDraining {
			t.Fatalf("recovered with east 4/6 ready: %+v", d.Status)
		}
		drillSetStatus(t, c, llama, drillCluster("east", 6, 6), drillFailedOver("west"))
		drillWait(t, c, drill, 10*time.Second, "recovered, cordon off, Restoring", func(d *v1alpha1.FailoverDrill) error {
			if d.Status.Phase != v1alpha1.DrillRestoring {
				return fmt.Errorf("phase %q", d.Status.Phase)
			}
			return drillCordonIs(c, llama, "north")
		})
		d = drillGet(t, c, drill)
		if want := []v1alpha1.DrillClusterShare{{Cluster: "east", Replicas: 6}, {Cluster: "west", Replicas: 0}}; !slices.Equal(d.Status.Services[0].During, want) {
			t.Errorf("during = %v, want %v", d.Status.Services[0].During, want)
		}
		if rec := d.Status.TimeToRecover; rec == nil || rec.Duration < time.Second || rec.Duration > 20*time.Second {
			t.Errorf("time to recover %v: want the 1.5s+ the test held east short", rec)
		}
		if d.Status.RecoveredTime == nil || d.Status.RestoreTime == nil || d.Status.Message != "" {
			t.Errorf("status after recovery: %+v", d.Status)
		}
		if err := drillConditions(d, drillCond{v1alpha1.DrillConditionRecovered, metav1.ConditionTrue, "Recovered"},
			drillCond{v1alpha1.DrillConditionSucceeded, metav1.ConditionUnknown, "Restoring"}); err != nil {
			t.Error(err)
		}

		// West is back in placement but not ready yet: not done.
		drillSetStatus(t, c, llama, drillCluster("east", 6, 6), drillCluster("west", 3, 1))
		time.Sleep(1500 * time.Millisecond)
		if d := drillGet(t, c, drill); d.Status.Phase != v1alpha1.DrillRestoring {
			t.Fatalf("failed back with west 1/3 ready: %+v", d.Status)
		}
		drillSetStatus(t, c, llama, drillCluster("east", 3, 3), drillCluster("west", 3, 3))
		drillWait(t, c, drill, 10*time.Second, "Succeeded and released", func(d *v1alpha1.FailoverDrill) error {
			if d.Status.Phase != v1alpha1.DrillSucceeded {
				return fmt.Errorf("phase %q", d.Status.Phase)
			}
			if len(d.Finalizers) > 0 {
				return fmt.Errorf("finalizers %v", d.Finalizers)
			}
			return nil
		})
		d = drillGet(t, c, drill)
		if fb := d.Status.TimeToFailback; fb == nil || fb.Duration < time.Second {
			t.Errorf("time to failback %v: want the 1.5s+ the test held west short", fb)
		}
		if d.Status.CompletionTime == nil || d.Status.TimeToRecover == nil {
			t.Fatalf("final status: %+v", d.Status)
		}
		if err := drillConditions(d, drillCond{v1alpha1.DrillConditionRecovered, metav1.ConditionTrue, "Recovered"},
			drillCond{v1alpha1.DrillConditionSucceeded, metav1.ConditionTrue, "Succeeded"}); err != nil {
			t.Error(err)
		}
		t.Logf("report: recover %s, failback %s, services %+v", d.Status.TimeToRecover.Duration, d.Status.TimeToFailback.Duration, d.Status.Services)
		// The metric holds the report's times, once each, and the whole run.
		rec, fb := d.Status.TimeToRecover.Duration, d.Status.TimeToFailback.Duration
		for _, m := range []struct {
			name          string
			before, after drillSamples
			want          float64
		}{
			{"recover", recBefore, drillObserved(t, "west", "recover", "Succeeded"), rec.Seconds()},
			{"failback", fbBefore, drillObserved(t, "west", "failback", "Succeeded"), fb.Seconds()},
		} {
			if n, sum := m.after.count-m.before.count, m.after.sum-m.before.sum; n != 1 || math.Abs(sum-m.want) > 1e-6 {
				t.Errorf("inferfleet_drill_duration_seconds{phase=%q}: %d more samples summing %.3fs, want 1 of %.3fs", m.name, n, sum, m.want)
			}
		}
		total := drillObserved(t, "west", "total", "Succeeded")
		if n, sum := total.count-totalBefore.count, total.sum-totalBefore.sum; n != 1 || sum < (rec+fb).Seconds()-0.1 || sum > 30 {
			t.Errorf("inferfleet_drill_duration_seconds{phase=\"total\"}: %d more samples summing %.3fs, want 1 of at least %s", n, sum, rec+fb)
		}
		if err := drillCordonIs(c, llama, "north"); err != nil {
			t.Error(err)
		}
		drillWait(t, c, drill, 10*time.Second, "events", func(d *v1alpha1.FailoverDrill) error {
			return drillHasEvents(c, d, controllers.ReasonDrillStarted, controllers.ReasonDrillRecovered, controllers.ReasonDrillSucceeded)
		})
	})

	t.Run("TimesOut", func(t *testing.T) {
		ns := drillNamespace(t, c, "drill-timeout")
		llama := drillService(t, c, ns, "llama", "")
		drillSetStatus(t, c, llama, drillCluster("east", 3, 3), drillCluster("west", 3, 3))
		totalBefore := drillObserved(t, "west", "total", "Failed")
		recBefore := drillObserved(t, "west", "recover", "Failed")
		drill := drillCreate(t, c, ns, "west", "llama", 2*time.Second)
		drillWait(t, c, drill, 10*time.Second, "cordon on", func(*v1alpha1.FailoverDrill) error { return drillCordonIs(c, llama, "west") })
		// MemberSync acts, but east never gets ready.
		drillSetStatus(t, c, llama, drillCluster("east", 6, 3), drillFailedOver("west"))
		drillWait(t, c, drill, 10*time.Second, "Failed and released", func(d *v1alpha1.FailoverDrill) error {
			if d.Status.Phase != v1alpha1.DrillFailed {
				return fmt.Errorf("phase %q", d.Status.Phase)
			}
			if len(d.Finalizers) > 0 {
				return fmt.Errorf("finalizers %v", d.Finalizers)
			}
			return nil
		})
		d := drillGet(t, c, drill)
		for _, want := range []string{"timed out", "llama", "east 3/6 ready"} {
			if !strings.Contains(d.Status.Message, want) {
				t.Errorf("message %q does not say %q", d.Status.Message, want)
			}
		}
		if err := drillCordonIs(c, llama, ""); err != nil {
			t.Errorf("cordon left behind: %v", err)
		}
		if err := drillConditions(d, drillCond{v1alpha1.DrillConditionRecovered, metav1.ConditionFalse, v1alpha1.DrillReasonRecoveryTimedOut},
			drillCond{v1alpha1.DrillConditionSucceeded, metav1.ConditionFalse, v1alpha1.DrillReasonRecoveryTimedOut}); err != nil {
			t.Error(err)
		}
		if d.Status.TimeToRecover != nil || d.Status.TimeToFailback != nil {
			t.Errorf("a drill that never recovered reports times: %+v", d.Status)
		}
		// A failed drill counts its whole run; it never recovered, so no time to recover.
		if total := drillObserved(t, "west", "total", "Failed"); total.count != totalBefore.count+1 || total.sum-totalBefore.sum < 2 {
			t.Errorf("total of the failed drill: %d more samples summing %.3fs, want 1 of at least its 2s timeout", total.count-totalBefore.count, total.sum-totalBefore.sum)
		}
		if rec := drillObserved(t, "west", "recover", "Failed"); rec.count != recBefore.count {
			t.Errorf("a drill that never recovered recorded %d times to recover", rec.count-recBefore.count)
		}
	})

	t.Run("CappedRecovery", func(t *testing.T) {
		ns := drillNamespace(t, c, "drill-capped")
		llama := drillService(t, c, ns, "llama", "")
		drillSetStatus(t, c, llama, drillCluster("east", 3, 3), drillCluster("west", 3, 3))
		drill := drillCreate(t, c, ns, "west", "llama", 30*time.Second)
		drillWait(t, c, drill, 10*time.Second, "cordon on", func(*v1alpha1.FailoverDrill) error { return drillCordonIs(c, llama, "west") })
		// Placement caps east at 4: recovery is east carrying those 4 ready, with a note.
		drillSetStatus(t, c, llama, drillCluster("east", 4, 4), drillFailedOver("west"))
		drillWait(t, c, drill, 10*time.Second, "Restoring", func(d *v1alpha1.FailoverDrill) error {
			if d.Status.Phase != v1alpha1.DrillRestoring {
				return fmt.Errorf("phase %q", d.Status.Phase)
			}
			return nil
		})
		d := drillGet(t, c, drill)
		if !strings.Contains(d.Status.Message, "carry 4 of 6 replicas") {
			t.Errorf("message %q does not report the capped recovery", d.Status.Message)
		}
		if r := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.DrillConditionRecovered); r == nil || r.Status != metav1.ConditionTrue || !strings.Contains(r.Message, "carry 4 of 6 replicas") {
			t.Errorf("Recovered condition %+v does not report the capped recovery", r)
		}
		if err := drillCordonIs(c, llama, ""); err != nil {
			t.Error(err)
		}
	})

	t.Run("DeletedMidway", func(t *testing.T) {
		ns := drillNamespace(t, c, "drill-deleted")
		llama := drillService(t, c, ns, "llama", "")
		drillSetStatus(t, c, llama, drillCluster("east", 3, 3), drillCluster("west", 3, 3))
		drill := drillCreate(t, c, ns, "west", "", 30*time.Second)
		drillWait(t, c, drill, 10*time.Second, "cordon on", func(*v1alpha1.FailoverDrill) error { return drillCordonIs(c, llama, "west") })
		if err := c.Delete(context.Background(), drill); err != nil {
			t.Fatal(err)
		}
		drillWait(t, c, nil, 10*time.Second, "drill gone and cordon off", func(*v1alpha1.FailoverDrill) error {
			err := c.Get(context.Background(), client.ObjectKeyFromObject(drill), &v1alpha1.FailoverDrill{})
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("drill still there (%v)", err)
			}
			return drillCordonIs(c, llama, "")
		})
	})

	t.Run("NothingToDrill", func(t *testing.T) {
		ns := drillNamespace(t, c, "drill-none")
		llama := drillService(t, c, ns, "llama", "")
		drillSetStatus(t, c, llama, drillCluster("east", 3, 3), drillCluster("west", 3, 3))
		southBefore, westBefore := drillObserved(t, "south", "total", "Failed"), drillObserved(t, "west", "total", "Failed")
		for _, tc := range []struct{ cluster, service, want string }{
			{"south", "", "no FleetInferenceService in namespace drill-none runs replicas on cluster south"},
			{"west", "absent", "FleetInferenceService absent not found"},
			{"south", "llama", "runs no replicas on cluster south (shares: east=3, west=3)"},
		} {
			drill := drillCreate(t, c, ns, tc.cluster, tc.service, 30*time.Second)
			drillWait(t, c, drill, 10*time.Second, "Failed", func(d *v1alpha1.FailoverDrill) error {
				if d.Status.Phase != v1alpha1.DrillFailed {
					return fmt.Errorf("phase %q", d.Status.Phase)
				}
				return nil
			})
			d := drillGet(t, c, drill)
			if !strings.Contains(d.Status.Message, tc.want) || len(d.Finalizers) > 0 || d.Status.StartTime != nil {
				t.Errorf("%s/%s: message %q (want %q), finalizers %v, start %v", tc.cluster, tc.service, d.Status.Message, tc.want, d.Finalizers, d.Status.StartTime)
			}
			if err := drillConditions(d, drillCond{v1alpha1.DrillConditionRecovered, metav1.ConditionFalse, v1alpha1.DrillReasonCannotStart},
				drillCond{v1alpha1.DrillConditionSucceeded, metav1.ConditionFalse, v1alpha1.DrillReasonCannotStart}); err != nil {
				t.Errorf("%s/%s: %v", tc.cluster, tc.service, err)
			}
		}
		if err := drillCordonIs(c, llama, ""); err != nil {
			t.Error(err)
		}
		// Drills that never started ran nothing to time.
		if south, west := drillObserved(t, "south", "total", "Failed"), drillObserved(t, "west", "total", "Failed"); south != southBefore || west != westBefore {
			t.Errorf("drills that never started were timed: south %+v -> %+v, west %+v -> %+v", southBefore, south, westBefore, west)
		}
	})
}

// drillSamples is one series of inferfleet_drill_duration_seconds.
type drillSamples struct {
	count uint64
	sum   float64
}

// drillObserved reads the series of inferfleet_drill_duration_seconds for one cluster,
// phase and result, through the collectors the hub registers.
func drillObserved(t *testing.T, cluster, phase, result string) drillSamples {
	t.Helper()
	m := hubSeries(t, "inferfleet_drill_duration_seconds", map[string]string{"cluster": cluster, "phase": phase, "result": result})
	return drillSamples{m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()}
}

func drillNamespace(t *testing.T, c client.Client, name string) string {
	t.Helper()
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// drillService creates a service placed on east and west, with a cordon annotation when
// cordon is not empty.
func drillService(t *testing.T, c client.Client, ns, name, cordon string) *v1alpha1.FleetInferenceService {
	t.Helper()
	svc := &v1alpha1.FleetInferenceService{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.FleetInferenceServiceSpec{
			Model:     v1alpha1.ModelSpec{Name: "meta-llama/Llama-3.1-8B-Instruct"},
			Replicas:  6,
			Placement: v1alpha1.PlacementSpec{Clusters: []v1alpha1.ClusterPlacement{{Name: "east"}, {Name: "west"}}},
		},
	}
	if cordon != "" {
		svc.Annotations = map[string]string{v1alpha1.AnnotationCordon: cordon}
	}
	if err := c.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

func drillCluster(name string, desired, ready int32) v1alpha1.ClusterStatus {
	return v1alpha1.ClusterStatus{Name: name, Reachable: true, DesiredReplicas: desired, ReadyReplicas: ready, Health: v1alpha1.Healthy}
}

func drillFailedOver(name string) v1alpha1.ClusterStatus {
	st := drillCluster(name, 0, 0)
	st.FailedOver = true
	return st
}

// drillSetStatus writes the service's status as MemberSync would, for its current generation.
func drillSetStatus(t *testing.T, c client.Client, svc *v1alpha1.FleetInferenceService, clusters ...v1alpha1.ClusterStatus) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &v1alpha1.FleetInferenceService{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(svc), cur); err != nil {
			return err
		}
		var desired, ready int32
		for _, st := range clusters {
			desired += st.DesiredReplicas
			ready += min(st.ReadyReplicas, st.DesiredReplicas)
		}
		cur.Status = v1alpha1.FleetInferenceServiceStatus{ObservedGeneration: cur.Generation, Clusters: clusters,
			Replicas: desired, ReadyReplicas: ready, ReplicasReady: fmt.Sprintf("%d/%d", ready, desired)}
		return c.Status().Update(context.Background(), cur)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func drillCreate(t *testing.T, c client.Client, ns, cluster, service string, timeout time.Duration) *v1alpha1.FailoverDrill {
	t.Helper()
	d := &v1alpha1.FailoverDrill{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "drill-" + cluster + "-", Namespace: ns},
		Spec:       v1alpha1.FailoverDrillSpec{Cluster: cluster, Service: service, Timeout: &metav1.Duration{Duration: timeout}},
	}
	if err := c.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return d
}

func drillGet(t *testing.T, c client.Client, drill *v1alpha1.FailoverDrill) *v1alpha1.FailoverDrill {
	t.Helper()
	d := &v1alpha1.FailoverDrill{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(drill), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// drillWait polls cond with the drill read fresh (nil when drill is nil) until it holds.
func drillWait(t *testing.T, c client.Client, drill *v1alpha1.FailoverDrill, timeout time.Duration, what string, cond func(*v1alpha1.FailoverDrill) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		var d *v1alpha1.FailoverDrill
		if drill != nil {
			d = &v1alpha1.FailoverDrill{}
			if last = c.Get(context.Background(), client.ObjectKeyFromObject(drill), d); last != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		if last = cond(d); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, last)
}

func drillCordon(t *testing.T, c client.Client, svc *v1alpha1.FleetInferenceService) string {
	t.Helper()
	cur := &v1alpha1.FleetInferenceService{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(svc), cur); err != nil {
		t.Fatal(err)
	}
	return cur.Annotations[v1alpha1.AnnotationCordon]
}

// drillCordonIs checks the service's cordon annotation; "" means the annotation is absent.
func drillCordonIs(c client.Client, svc *v1alpha1.FleetInferenceService, want string) error {
	cur := &v1alpha1.FleetInferenceService{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(svc), cur); err != nil {
		return err
	}
	got, ok := cur.Annotations[v1alpha1.AnnotationCordon]
	switch {
	case want == "" && ok:
		return fmt.Errorf("%s still has cordon %q", svc.Name, got)
	case got != want:
		return fmt.Errorf("%s cordon = %q, want %q", svc.Name, got, want)
	}
	return nil
}

func drillReportsEqual(a, b []v1alpha1.DrillServiceReport) bool {
	return slices.EqualFunc(a, b, func(x, y v1alpha1.DrillServiceReport) bool {
		return x.Name == y.Name && slices.Equal(x.Before, y.Before) && slices.Equal(x.During, y.During)
	})
}

// drillCond is a condition a drill should have: its type, status and reason.
type drillCond struct {
	typ    string
	status metav1.ConditionStatus
	reason string
}

// drillConditions checks the drill's conditions, and that they and the status describe
// its generation.
func drillConditions(d *v1alpha1.FailoverDrill, want ...drillCond) error {
	if d.Status.ObservedGeneration != d.Generation {
		return fmt.Errorf("status.observedGeneration %d, generation %d", d.Status.ObservedGeneration, d.Generation)
	}
	for _, w := range want {
		c := meta.FindStatusCondition(d.Status.Conditions, w.typ)
		switch {
		case c == nil:
			return fmt.Errorf("no %s condition in %+v", w.typ, d.Status.Conditions)
		case c.Status != w.status || c.Reason != w.reason || c.ObservedGeneration != d.Generation:
			return fmt.Errorf("%s = %s/%s (generation %d), want %s/%s (generation %d): %s", w.typ, c.Status, c.Reason, c.ObservedGeneration, w.status, w.reason, d.Generation, c.Message)
		}
	}
	return nil
}

// drillHasEvents checks the drill has an event with each reason.
func drillHasEvents(c client.Client, d *v1alpha1.FailoverDrill, reasons ...string) error {
	return hasEvents(c, d.Namespace, d.UID, reasons...)
}

// hasEvents checks the object with this UID has an event with each reason.
func hasEvents(c client.Client, namespace string, uid types.UID, reasons ...string) error {
	var list eventsv1.EventList
	if err := c.List(context.Background(), &list, client.InNamespace(namespace)); err != nil {
		return err
	}
	var got []string
	for _, e := range list.Items {
		if e.Regarding.UID == uid {
			got = append(got, e.Reason)
		}
	}
	for _, r := range reasons {
		if !slices.Contains(got, r) {
			return fmt.Errorf("no %s event (have %v)", r, got)
		}
	}
	return nil
}
