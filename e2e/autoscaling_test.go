package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	infv1alpha2 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/localfleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// TestAutoscalingOnLocalFleet: the hub scales a service on its model servers' waiting
// requests, which it reads through each member's pod proxy as it would from vLLM. kwok runs
// every model server at the test host's address, where a fake vLLM reports what the test
// sets. A load step up doubles the total and the new servers run Ready in both members; a
// signal that wanders within the tolerance around the target changes nothing; a step down
// waits out the scale-down window. With minReplicas 0, an idle fleet goes to zero servers
// after its idle window, keeping the pool, endpoint pickers and routes, and the first
// request an endpoint picker reports brings servers back. Without autoscaling, kubectl
// scale sets the total through the scale subresource; a member's own HPA, run by its
// controller manager, scales its Deployment and the hub leaves the replicas to it.
func TestAutoscalingOnLocalFleet(t *testing.T) {
	const interval = 2 * time.Second
	const window = 10 * time.Second
	host := testenv.TestHost(t)
	l := host.Listen(t)
	lf := framework.StartLocalFleet(t, localfleet.DefaultMembers(), func(o *localfleet.Options) { o.ModelServerIP = host.IP })
	ctx := context.Background()
	hub := lf.Hub.Client
	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	key := client.ObjectKeyFromObject(svc)

	// The fake vLLM behind every model server: the fleet's waiting requests, which the test
	// sets, shared by the servers running ready (as a load balancer would share them).
	var load atomic.Int64 // waiting requests across the fleet, in thousandths
	// The servers running ready, counted apart from the requests, which must answer
	// within the hub's read timeout however loaded the machine is.
	var servers atomic.Int32
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			var n int32
			for _, name := range []string{"gke-west", "gke-east"} {
				if d, err := modelDeployment(ctx, lf.Member(name).Client, key); err == nil {
					n += d.Status.ReadyReplicas
				}
			}
			servers.Store(n)
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	// The fake endpoint picker behind every picker pod: the requests it refused with no
	// model server to send them to.
	var requests atomic.Int64
	pickers := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE inference_objective_request_error_total counter\ninference_objective_request_error_total{error_code=\"ServiceUnavailable\",model_name=\"m\",target_model_name=\"\"} %d\n", requests.Load())
	})}
	pl := host.ListenPort(t, int(render.EndpointPickerMetricsPort))
	go func() { _ = pickers.Serve(pl) }()
	t.Cleanup(func() { _ = pickers.Close() })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		per := float64(load.Load()) / 1000 / float64(max(servers.Load(), 1))
		fmt.Fprintf(w, "# TYPE %s gauge\n%s{model_name=\"m\"} %g\n", fleet.VLLMWaitingMetric, fleet.VLLMWaitingMetric, per)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	setLoad := func(v float64) { load.Store(int64(math.Round(v * 1000))) }
	setLoad(10) // 5 per server on 2 servers: on target

	lf.RunHub(t, app.HubOptions{KVCacheInterval: interval})
	svc.Spec.Model.Server.Port = int32(l.Addr().(*net.TCPAddr).Port)
	svc.Spec.Replicas = 2
	svc.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{
		MinReplicas: ptr.To[int32](1), MaxReplicas: 8,
		Metrics: []v1alpha1.AutoscalingMetric{{Type: v1alpha1.MetricWaitingRequests, AverageValue: ptr.To(resource.MustParse("5"))}},
		Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To(int32(window.Seconds()))},
		},
	}
	createToken(ctx, t, hub)
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}

	// running: the autoscaler set the total to n, read from servers model servers, and
	// every member runs its half ready.
	running := func(n, servers int32) func() error {
		return func() error {
			got := getService(ctx, t, hub, key)
			a := got.Status.Autoscaling
			if a == nil || a.DesiredReplicas != n {
				return fmt.Errorf("autoscaling %+v, want a total of %d", a, n)
			}
			if servers > 0 && (len(a.Metrics) != 1 || a.Metrics[0].Servers != servers) {
				return fmt.Errorf("metrics %+v, want %d servers read", a.Metrics, servers)
			}
			for _, name := range []string{"gke-west", "gke-east"} {
				d, err := modelDeployment(ctx, lf.Member(name).Client, key)
				if err != nil {
					return err
				}
				if *d.Spec.Replicas != n/2 || d.Status.ReadyReplicas != n/2 || d.Status.Replicas != n/2 {
					return fmt.Errorf("%s runs %d of %d ready (%d pods), want %d", name, d.Status.ReadyReplicas, *d.Spec.Replicas, d.Status.Replicas, n/2)
				}
			}
			return nil
		}
	}
	scaled := func() []string {
		var evs eventsv1.EventList
		if err := hub.List(ctx, &evs, client.InNamespace(key.Namespace)); err != nil {
			t.Fatal(err)
		}
		var notes []string
		for _, e := range evs.Items {
			if e.Regarding.Name == key.Name && e.Reason == controllers.ReasonScaled {
				notes = append(notes, e.Note)
			}
		}
		return notes
	}

	t.Run("on target: the total stands, read from both members' servers", func(t *testing.T) {
		framework.Eventually(t, time.Minute, "2 servers on target", running(2, 2))
	})

	t.Run("load doubles: 4 servers, ready in both members", func(t *testing.T) {
		setLoad(20) // 10 per server: twice the target
		began := time.Now()
		framework.Eventually(t, interval+30*time.Second, "4 ready servers", running(4, 0))
		t.Logf("4 servers ready %s after the step", time.Since(began).Round(100*time.Millisecond))
		framework.Eventually(t, 10*time.Second, "a Scaled event", func() error {
			if n := scaled(); !slices.ContainsFunc(n, func(s string) bool { return strings.HasPrefix(s, "fleet total 2 -> 4") }) {
				return fmt.Errorf("Scaled events %q", n)
			}
			return nil
		})
	})

	t.Run("a signal that wanders within the tolerance for 5 minutes changes nothing", func(t *testing.T) {
		framework.Eventually(t, 20*time.Second, "4 servers read", running(4, 4))
		before := len(scaled())
		// Up to 9 % off the target (5 per server on 4 servers) either way, a new value at
		// every read, for 5 minutes: longer than the scale-down window, and the HPA's
		// default one.
		rng := rand.New(rand.NewPCG(1, 2))
		for end, i := time.Now().Add(5*time.Minute), 1; time.Now().Before(end); i++ {
			setLoad(20 * (1 + 0.09*(2*rng.Float64()-1)))
			time.Sleep(interval)
			if err := running(4, 0)(); err != nil {
				t.Fatalf("after %d noisy reads: %v", i, err)
			}
		}
		if after := scaled(); len(after) != before {
			t.Fatalf("scale events during the noise: %q", after[before:])
		}
	})

	t.Run("load falls: held for the scale-down window, then 2 servers", func(t *testing.T) {
		setLoad(10) // 2.5 per server on 4 servers: 2 are enough
		fell := time.Now()
		framework.Eventually(t, window+interval+30*time.Second, "2 ready servers", running(2, 0))
		// The last reading on the old load may come up to a read interval before it fell,
		// and its tick may drift by about as much.
		if held := time.Since(fell); held < window-2*interval {
			t.Fatalf("scaled down %s after the load fell, within the %s window", held, window)
		}
	})

	t.Run("minReplicas 0: idle to zero servers, routing kept; a request brings them back", func(t *testing.T) {
		const idle = 6 * time.Second
		setLoad(0)
		framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Autoscaling.MinReplicas = ptr.To[int32](0)
			s.Spec.Autoscaling.IdleWindowSeconds = ptr.To(int32(idle.Seconds()))
		})
		began := time.Now()
		framework.Eventually(t, idle+2*time.Minute, "zero servers", running(0, 0))
		if took := time.Since(began); took < idle {
			t.Fatalf("at zero %s after the load stopped, within the %s idle window", took, idle)
		}
		if a := getService(ctx, t, hub, key).Status.Autoscaling; a.Reason != fleet.ScaleReasonIdle || a.IdleSince == nil {
			t.Errorf("autoscaling at zero: %+v, want reason Idle with idleSince", a)
		}
		for _, name := range []string{"gke-west", "gke-east"} {
			m := lf.Member(name).Client
			var pods corev1.PodList
			if err := m.List(ctx, &pods, client.InNamespace(key.Namespace), client.MatchingLabels(render.ModelLabels(svc))); err != nil {
				t.Fatal(err)
			}
			if len(pods.Items) > 0 {
				// kwok deletes them at once; the controller manager may lag a moment.
				framework.Eventually(t, 30*time.Second, name+" model-server pods gone", func() error {
					if err := m.List(ctx, &pods, client.InNamespace(key.Namespace), client.MatchingLabels(render.ModelLabels(svc))); err != nil || len(pods.Items) > 0 {
						return fmt.Errorf("%d model-server pods (%v)", len(pods.Items), err)
					}
					return nil
				})
			}
			if err := m.Get(ctx, key, &infv1.InferencePool{}); err != nil {
				t.Errorf("%s: the InferencePool went with the servers: %v", name, err)
			}
			var epp appsv1.Deployment
			if err := m.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: render.EndpointPickerName(svc)}, &epp); err != nil || ptr.Deref(epp.Spec.Replicas, 0) < 1 {
				t.Errorf("%s: the endpoint picker went with the servers: %v", name, err)
			} else if !slices.Contains(epp.Spec.Template.Spec.Containers[0].Args, "--metrics-endpoint-auth=false") {
				t.Errorf("%s: the endpoint picker's metrics keep their auth, which the hub cannot pass: %q", name, epp.Spec.Template.Spec.Containers[0].Args)
			}
		}
		var routes gatewayv1.HTTPRouteList
		if err := hub.List(ctx, &routes, client.InNamespace(key.Namespace)); err != nil || len(routes.Items) == 0 {
			t.Errorf("the config cluster's routes went with the servers (%d, %v)", len(routes.Items), err)
		}

		asked := time.Now()
		requests.Add(1) // a client's request, refused by a picker with no endpoint
		setLoad(20)     // and the queue it joins: 20 waiting
		framework.Eventually(t, 30*time.Second, "one server back", func() error {
			a := getService(ctx, t, hub, key).Status.Autoscaling
			if a == nil || a.DesiredReplicas == 0 {
				return fmt.Errorf("autoscaling %+v, want back from zero", a)
			}
			return nil
		})
		// The first server reads 20 waiting: 4 servers, ready in both members.
		framework.Eventually(t, time.Minute, "4 ready servers after zero", running(4, 0))
		t.Logf("4 servers ready %s after the first request", time.Since(asked).Round(100*time.Millisecond))
		if n := scaled(); !slices.ContainsFunc(n, func(s string) bool { return strings.HasPrefix(s, "fleet total 0 -> 1") }) {
			t.Errorf("no Scaled event from zero: %q", n)
		}
	})

	t.Run("kubectl scale sets the total without autoscaling", func(t *testing.T) {
		framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) { s.Spec.Autoscaling = nil })
		out, err := exec.Command(filepath.Join(framework.BinDir(), "kubectl"), "--kubeconfig", lf.Hub.KubeconfigPath,
			"scale", "fis", key.Name, "-n", key.Namespace, "--replicas=6").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl scale: %v\n%s", err, out)
		}
		framework.Eventually(t, 30*time.Second, "3 ready servers per member", func() error {
			got := getService(ctx, t, hub, key)
			if got.Spec.Replicas != 6 || got.Status.Replicas != 6 {
				return fmt.Errorf("spec.replicas %d, status.replicas %d, want 6", got.Spec.Replicas, got.Status.Replicas)
			}
			for _, name := range []string{"gke-west", "gke-east"} {
				d, err := modelDeployment(ctx, lf.Member(name).Client, key)
				if err != nil {
					return err
				}
				if d.Status.ReadyReplicas != 3 {
					return fmt.Errorf("%s runs %d ready, want 3", name, d.Status.ReadyReplicas)
				}
			}
			return nil
		})
	})

	t.Run("a member's own HPA scales its Deployment, and the hub leaves the replicas to it", func(t *testing.T) {
		west := lf.Member("gke-west").Client
		// The member's HPA controller holds the Deployment within the HPA's bounds (the
		// member has no metrics API, so the bounds are all it goes by).
		hpa := &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: key.Name},
				MinReplicas:    ptr.To[int32](5), MaxReplicas: 5,
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}}},
			},
		}
		if err := west.Create(ctx, hpa); err != nil {
			t.Fatal(err)
		}
		scaledByHPA := func() error {
			d, err := modelDeployment(ctx, west, key)
			if err != nil {
				return err
			}
			if *d.Spec.Replicas != 5 || d.Status.ReadyReplicas != 5 {
				return fmt.Errorf("gke-west runs %d ready of %d, want the HPA's 5", d.Status.ReadyReplicas, *d.Spec.Replicas)
			}
			got := getService(ctx, t, hub, key)
			for _, c := range got.Status.Clusters {
				if c.Name == "gke-west" {
					if c.ScaledBy != "HorizontalPodAutoscaler/"+key.Name || c.DesiredReplicas != 5 || c.ObservedGeneration != got.Generation {
						return fmt.Errorf("gke-west's entry: scaledBy %q, %d desired (generation %d of %d), want the HPA's 5", c.ScaledBy, c.DesiredReplicas, c.ObservedGeneration, got.Generation)
					}
					return nil
				}
			}
			return fmt.Errorf("no entry for gke-west")
		}
		framework.Eventually(t, time.Minute, "gke-west at the HPA's 5", scaledByHPA)
		// A spec change makes the hub apply everything again; the replicas stay the HPA's.
		framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Objectives = append(s.Spec.Objectives, v1alpha1.Objective{Name: "hpa-check"})
		})
		framework.Eventually(t, 30*time.Second, "the new objective in gke-west", func() error {
			return west.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: "hpa-check"}, &infv1alpha2.InferenceObjective{})
		})
		framework.Eventually(t, 30*time.Second, "gke-west still at the HPA's 5 after the hub applied again", scaledByHPA)
		if east, err := modelDeployment(ctx, lf.Member("gke-east").Client, key); err != nil || *east.Spec.Replicas != 3 {
			t.Errorf("gke-east, without an HPA, keeps its share of 3: %v %v", east.Spec.Replicas, err)
		}
	})
}
