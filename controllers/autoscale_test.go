package controllers_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1alpha2 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// TestAutoscaling runs the hub on two members whose model servers (HTTP servers standing
// in for vLLM at the pods' IP) report as many waiting requests as the test sets: a load
// step up grows the fleet total, a step down shrinks it only after the scale-down window,
// and placement splits whatever total the autoscaler sets.
func TestAutoscaling(t *testing.T) {
	const interval = time.Second
	f := startFleetWith(t, app.HubOptions{KVCacheInterval: interval}, "west", "east")
	ctx := context.Background()
	hub := f.hub.Client

	host := testenv.TestHost(t)
	l := host.Listen(t)
	var waiting atomic.Int64 // per server, in thousandths
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE %s gauge\n%s{engine=\"0\",model_name=\"m\"} %v\n%s{engine=\"0\",model_name=\"m\"} 0.5\n",
			fleet.VLLMWaitingMetric, fleet.VLLMWaitingMetric, float64(waiting.Load())/1000, fleet.VLLMKVCacheMetric)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	setWaiting := func(v float64) { waiting.Store(int64(math.Round(v * 1000))) }
	setWaiting(5) // on target

	createToken(ctx, t, hub)
	svc := twoRegionService("west", "east")
	svc.Spec.Model.Server.Port = int32(l.Addr().(*net.TCPAddr).Port)
	svc.Spec.Replicas = 2
	svc.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{
		MinReplicas: ptr.To[int32](1), MaxReplicas: 8,
		Metrics: []v1alpha1.AutoscalingMetric{{Type: v1alpha1.MetricWaitingRequests, AverageValue: ptr.To(resource.MustParse("5"))}},
		Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](8)},
		},
	}
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)

	// One ready model server per member, as each member's share of 2 is 1 (envtest runs
	// no Deployment controller: the test plays it).
	for name, env := range f.members {
		m := env.Client
		eventually(t, 20*time.Second, name+" model Deployment", func() error {
			_, err := getDeployment(ctx, m, "serving", "llama")
			return err
		})
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "llama-0", Namespace: "serving", Labels: map[string]string{"app": "llama"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "vllm", Image: "vllm/vllm-openai"}}},
		}
		if err := m.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: host.IP, PodIPs: []corev1.PodIP{{IP: host.IP}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		if err := m.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	// envtest runs no Deployment controller: play its part, every model Deployment's
	// replicas turning ready as soon as they are asked for.
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	for _, env := range f.members {
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				d, err := getDeployment(ctx, env.Client, "serving", "llama")
				if err != nil || d.Status.ReadyReplicas == *d.Spec.Replicas {
					continue
				}
				n := *d.Spec.Replicas
				d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas, d.Status.UpdatedReplicas = n, n, n, n
				d.Status.ObservedGeneration = d.Generation
				_ = env.Client.Status().Update(ctx, d)
			}
		}()
	}

	total := func(want int32, reason string) func() error {
		return func() error {
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, key, got); err != nil {
				return err
			}
			a := got.Status.Autoscaling
			if a == nil || a.DesiredReplicas != want || (reason != "" && a.Reason != reason) {
				return fmt.Errorf("autoscaling %+v, want %d (%s)", a, want, reason)
			}
			var placed int32
			if got.Status.Placement != nil {
				for _, c := range got.Status.Placement.Clusters {
					placed += c.Replicas
				}
			}
			if placed != want {
				return fmt.Errorf("placement splits %d, want %d: %+v", placed, want, got.Status.Placement.Clusters)
			}
			sum := int32(0)
			for _, env := range f.members {
				d, err := getDeployment(ctx, env.Client, "serving", "llama")
				if err != nil {
					return err
				}
				sum += *d.Spec.Replicas
			}
			if sum != want {
				return fmt.Errorf("members run %d model servers, want %d", sum, want)
			}
			return nil
		}
	}

	t.Run("on target: the total stands", func(t *testing.T) {
		eventually(t, 20*time.Second, "a decision on both members' servers", func() error {
			if err := total(2, fleet.ScaleReasonSteady)(); err != nil {
				return err
			}
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, key, got); err != nil {
				return err
			}
			m := got.Status.Autoscaling.Metrics
			if len(m) != 1 || m[0].Servers != 2 || m[0].Average == nil || m[0].Average.String() != "5" {
				return fmt.Errorf("metrics in status %+v, want 2 servers at 5", m)
			}
			return nil
		})
	})

	t.Run("load doubles: the total doubles", func(t *testing.T) {
		setWaiting(10)
		eventually(t, 10*interval+10*time.Second, "scaled up", total(4, ""))
	})

	t.Run("load falls: held for the scale-down window, then down", func(t *testing.T) {
		setWaiting(1)
		// ceil(1/5 * 2 servers) = 1, but the window still holds the earlier 4.
		eventually(t, 10*interval+10*time.Second, "held by the window", func() error {
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, key, got); err != nil {
				return err
			}
			if a := got.Status.Autoscaling; a == nil || a.Reason != fleet.ScaleReasonStabilizing || a.RecommendedReplicas != 1 || a.DesiredReplicas != 4 {
				return fmt.Errorf("autoscaling %+v, want 4 held (recommended 1)", a)
			}
			return nil
		})
		eventually(t, 20*interval+10*time.Second, "scaled down", total(1, ""))
	})

	t.Run("a scale event per change", func(t *testing.T) {
		eventually(t, 10*time.Second, "events", func() error {
			var evs eventsv1.EventList
			if err := hub.List(ctx, &evs, client.InNamespace("serving")); err != nil {
				return err
			}
			var notes []string
			for _, e := range evs.Items {
				if e.Regarding.Name == "llama" && e.Reason == controllers.ReasonScaled {
					notes = append(notes, e.Note)
				}
			}
			if !slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, "fleet total 2 -> 4") }) ||
				!slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, "fleet total 4 -> 1") }) {
				return fmt.Errorf("Scaled events %q, want 2 -> 4 and 4 -> 1", notes)
			}
			return nil
		})
	})
}

// TestMemberHPAKeepsReplicas: where a member's own HorizontalPodAutoscaler scales the
// model Deployment, the hub leaves its replicas to it (and says so in the cluster's
// entry) while still applying the rest; without the HPA, the hub sets its share again.
func TestMemberHPAKeepsReplicas(t *testing.T) {
	f := startFleet(t, "west")
	ctx := context.Background()
	hub, west := f.hub.Client, f.members["west"].Client
	createToken(ctx, t, hub)
	svc := twoRegionService("west")
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)
	replicas := func(want int32) func() error {
		return func() error {
			d, err := getDeployment(ctx, west, "serving", "llama")
			if err != nil {
				return err
			}
			if *d.Spec.Replicas != want {
				return fmt.Errorf("model Deployment at %d replicas, want %d", *d.Spec.Replicas, want)
			}
			return nil
		}
	}
	entry := func(scaledBy string, desired int32) func() error {
		return func() error {
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, key, got); err != nil {
				return err
			}
			for _, c := range got.Status.Clusters {
				if c.Name == "west" && c.ScaledBy == scaledBy && c.DesiredReplicas == desired && c.ObservedGeneration == got.Generation {
					return nil
				}
			}
			return fmt.Errorf("west's entry %+v, want scaledBy %q and %d desired", got.Status.Clusters, scaledBy, desired)
		}
	}
	// Any spec change makes the hub apply everything again.
	objective := func(name string) {
		framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Objectives = append(s.Spec.Objectives, v1alpha1.Objective{Name: name})
		})
		eventually(t, 20*time.Second, "objective "+name+" applied", func() error {
			return west.Get(ctx, client.ObjectKey{Namespace: "serving", Name: name}, &infv1alpha2.InferenceObjective{})
		})
	}
	eventually(t, 20*time.Second, "the share applied", replicas(6))

	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: "serving"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "llama"},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 12,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}}},
		},
	}
	if err := west.Create(ctx, hpa); err != nil {
		t.Fatal(err)
	}
	// The HPA scales the Deployment as it does, through the scale subresource.
	d, err := getDeployment(ctx, west, "serving", "llama")
	if err != nil {
		t.Fatal(err)
	}
	if err := west.SubResource("scale").Update(ctx, d, client.WithSubResourceBody(&autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 9}}),
		client.FieldOwner("horizontal-pod-autoscaler")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "west's entry names the HPA", entry("HorizontalPodAutoscaler/llama", 9))
	objective("second")
	if err := replicas(9)(); err != nil {
		t.Fatalf("after the hub applied again: %v", err)
	}

	if err := west.Delete(ctx, hpa); err != nil {
		t.Fatal(err)
	}
	objective("third")
	eventually(t, 20*time.Second, "the share back", replicas(6))
	eventually(t, 20*time.Second, "west's entry without the HPA", entry("", 6))
}
