package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	infv1alpha1 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/controllers/render"
)

func routeService(name string, clusters ...string) *v1alpha1.FleetInferenceService {
	s := twoRegionService(clusters...)
	s.Name, s.Namespace = name, "default"
	s.Spec.Model.Server.HuggingFaceTokenSecretRef = nil
	s.Spec.Model.LoraAdapters = nil
	s.Spec.Objectives = nil
	s.Spec.Replicas = int32(2 * len(clusters))
	return s
}

func getGateway(ctx context.Context, c client.Client, name string) (*gwv1.Gateway, error) {
	g := &gwv1.Gateway{}
	return g, c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, g)
}

func regionsOf(g *gwv1.Gateway) string {
	var out []string
	for _, a := range g.Spec.Addresses {
		out = append(out, a.Value)
	}
	return strings.Join(out, ",")
}

func markReady(ctx context.Context, t *testing.T, c client.Client, name string, ready int32) {
	t.Helper()
	eventually(t, 15*time.Second, "mark "+name+" ready", func() error {
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, d); err != nil {
			return err
		}
		d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = *d.Spec.Replicas, ready, ready
		return c.Status().Update(ctx, d)
	})
}

// TestRouteSyncGKE covers the config cluster for provider GKE: a Gateway shared by two
// services with the union of their regions, routes and policies, status from a Gateway
// controller, drift, an unowned Gateway, and deletion of one service then the other.
func TestRouteSyncGKE(t *testing.T) {
	f := startFleet(t, "west", "east")
	ctx := context.Background()
	hub := f.hub.Client
	a, b := routeService("alpha", "west", "east"), routeService("beta", "east")
	for _, s := range []*v1alpha1.FleetInferenceService{a, b} {
		if err := hub.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("shared gateway, routes and policies", func(t *testing.T) {
		eventually(t, 20*time.Second, "config objects", func() error {
			g, err := getGateway(ctx, hub, "cross-region-gateway")
			if err != nil {
				return err
			}
			if regionsOf(g) != "europe-west3,us-east4" || g.Spec.GatewayClassName != v1alpha1.DefaultGKEGatewayClass {
				return fmt.Errorf("gateway regions %s class %s", regionsOf(g), g.Spec.GatewayClassName)
			}
			for _, s := range []string{"alpha", "beta"} {
				r := &gwv1.HTTPRoute{}
				if err := hub.Get(ctx, client.ObjectKey{Namespace: "default", Name: s}, r); err != nil {
					return err
				}
				if *r.Spec.Rules[0].BackendRefs[0].Kind != "GCPInferencePoolImport" {
					return fmt.Errorf("route %s backend %v", s, r.Spec.Rules[0].BackendRefs[0])
				}
				for _, gvk := range []string{"HealthCheckPolicy", "GCPBackendPolicy"} {
					u := &unstructured.Unstructured{}
					u.SetAPIVersion("networking.gke.io/v1")
					u.SetKind(gvk)
					if err := hub.Get(ctx, client.ObjectKey{Namespace: "default", Name: s + "-import"}, u); err != nil {
						return err
					}
				}
			}
			return nil
		})
	})

	t.Run("no gateway controller yet", func(t *testing.T) {
		eventually(t, 10*time.Second, "RoutesProgrammed Unknown", func() error {
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, client.ObjectKeyFromObject(a), got); err != nil {
				return err
			}
			c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionRoutesProgrammed)
			if c == nil || c.Status != metav1.ConditionUnknown || c.Reason != controllers.ReasonAwaitingController || !strings.Contains(c.Message, "no Gateway controller") {
				return fmt.Errorf("RoutesProgrammed %+v", c)
			}
			return nil
		})
	})

	t.Run("status from the gateway controller", func(t *testing.T) {
		// Play the GKE Gateway controller: program the Gateway and accept the route.
		eventually(t, 10*time.Second, "write gateway status", func() error {
			g, err := getGateway(ctx, hub, "cross-region-gateway")
			if err != nil {
				return err
			}
			g.Status.Addresses = []gwv1.GatewayStatusAddress{{Value: "192.0.2.10"}, {Value: "192.0.2.20"}}
			g.Status.Conditions = []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", ObservedGeneration: g.Generation, LastTransitionTime: metav1.Now()}}
			return hub.Status().Update(ctx, g)
		})
		eventually(t, 10*time.Second, "write route status", func() error {
			r := &gwv1.HTTPRoute{}
			if err := hub.Get(ctx, client.ObjectKey{Namespace: "default", Name: "alpha"}, r); err != nil {
				return err
			}
			r.Status.Parents = []gwv1.RouteParentStatus{{ParentRef: gwv1.ParentReference{Name: "cross-region-gateway"}, ControllerName: "networking.gke.io/gateway",
				Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: r.Generation, LastTransitionTime: metav1.Now()}}}}
			return hub.Status().Update(ctx, r)
		})
		eventually(t, 10*time.Second, "RoutesProgrammed True with addresses", func() error {
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, client.ObjectKeyFromObject(a), got); err != nil {
				return err
			}
			c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionRoutesProgrammed)
			if c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("RoutesProgrammed %+v", c)
			}
			if got.Status.Gateway == nil || strings.Join(got.Status.Gateway.Addresses, ",") != "192.0.2.10,192.0.2.20" {
				return fmt.Errorf("addresses %+v", got.Status.Gateway)
			}
			return nil
		})
	})

	t.Run("no-op reconcile writes nothing", func(t *testing.T) {
		versions := func() map[string]string {
			out := map[string]string{}
			for _, o := range []client.Object{&gwv1.Gateway{}, &gwv1.HTTPRoute{}, &v1alpha1.FleetInferenceService{}} {
				name := map[bool]string{true: "cross-region-gateway", false: "alpha"}[fmt.Sprintf("%T", o) == "*v1.Gateway"]
				if err := hub.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, o); err != nil {
					t.Fatal(err)
				}
				out[fmt.Sprintf("%T", o)] = o.GetResourceVersion()
			}
			for _, kind := range []string{"HealthCheckPolicy", "GCPBackendPolicy"} {
				u := &unstructured.Unstructured{}
				u.SetAPIVersion("networking.gke.io/v1")
				u.SetKind(kind)
				if err := hub.Get(ctx, client.ObjectKey{Namespace: "default", Name: "alpha-import"}, u); err != nil {
					t.Fatal(err)
				}
				out[kind] = u.GetResourceVersion()
			}
			return out
		}
		svc := &v1alpha1.FleetInferenceService{}
		eventually(t, 15*time.Second, "converged", func() error {
			if err := hub.Get(ctx, client.ObjectKeyFromObject(a), svc); err != nil {
				return err
			}
			if c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionPropagated); c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("Propagated %+v", c)
			}
			return nil
		})
		if err := hub.Patch(ctx, svc, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"poke":"1"}}}`))); err != nil {
			t.Fatal(err)
		}
		before := versions()
		st := &v1alpha1.FleetInferenceService{}
		_ = hub.Get(ctx, client.ObjectKeyFromObject(a), st)
		time.Sleep(3 * time.Second)
		after := versions()
		st2 := &v1alpha1.FleetInferenceService{}
		_ = hub.Get(ctx, client.ObjectKeyFromObject(a), st2)
		if d := cmp.Diff(st.Status, st2.Status); d != "" {
			t.Logf("status changed:\n%s", d)
		}
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s written by a no-op reconcile (%s -> %s)", k, v, after[k])
			}
		}
	})

	t.Run("gateway drift is reverted", func(t *testing.T) {
		eventually(t, 10*time.Second, "edit", func() error {
			g, err := getGateway(ctx, hub, "cross-region-gateway")
			if err != nil {
				return err
			}
			g.Spec.Listeners[0].Port = 9999
			g.Spec.Addresses = g.Spec.Addresses[:1]
			return hub.Update(ctx, g)
		})
		eventually(t, 10*time.Second, "reverted", func() error {
			g, err := getGateway(ctx, hub, "cross-region-gateway")
			if err != nil {
				return err
			}
			if g.Spec.Listeners[0].Port != 80 || regionsOf(g) != "europe-west3,us-east4" {
				return fmt.Errorf("port %d regions %s", g.Spec.Listeners[0].Port, regionsOf(g))
			}
			return nil
		})
	})

	t.Run("unowned gateway is not taken over", func(t *testing.T) {
		theirs := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: "default"},
			Spec: gwv1.GatewaySpec{GatewayClassName: "theirs", Listeners: []gwv1.Listener{{Name: "web", Port: 8080, Protocol: gwv1.HTTPProtocolType}}}}
		if err := hub.Create(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		c := routeService("gamma", "west")
		c.Spec.Gateway.Name = "taken"
		if err := hub.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "conflict reported", func() error {
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, client.ObjectKeyFromObject(c), got); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionRoutesProgrammed)
			if cond == nil || cond.Reason != controllers.ReasonGatewayConflict {
				return fmt.Errorf("RoutesProgrammed %+v", cond)
			}
			return nil
		})
		g, err := getGateway(ctx, hub, "taken")
		if err != nil || g.Spec.GatewayClassName != "theirs" || g.Spec.Listeners[0].Port != 8080 || g.Labels[render.LabelManagedBy] != "" {
			t.Fatalf("unowned gateway changed: %v %+v", err, g)
		}
		if err := hub.Delete(ctx, c); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "gamma gone, their gateway kept", func() error {
			if err := hub.Get(ctx, client.ObjectKeyFromObject(c), &v1alpha1.FleetInferenceService{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("gamma still there: %v", err)
			}
			_, err := getGateway(ctx, hub, "taken")
			return err
		})
	})

	t.Run("deleting one service keeps the other's gateway", func(t *testing.T) {
		if err := hub.Delete(ctx, a); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "alpha's objects gone, gateway shrunk", func() error {
			if err := hub.Get(ctx, client.ObjectKeyFromObject(a), &v1alpha1.FleetInferenceService{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("alpha still there: %v", err)
			}
			if err := hub.Get(ctx, client.ObjectKey{Namespace: "default", Name: "alpha"}, &gwv1.HTTPRoute{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("alpha's route still there: %v", err)
			}
			g, err := getGateway(ctx, hub, "cross-region-gateway")
			if err != nil {
				return err
			}
			if regionsOf(g) != "us-east4" {
				return fmt.Errorf("regions %s, want beta's only", regionsOf(g))
			}
			return hub.Get(ctx, client.ObjectKey{Namespace: "default", Name: "beta"}, &gwv1.HTTPRoute{})
		})
	})

	t.Run("the last service takes the gateway with it", func(t *testing.T) {
		if err := hub.Delete(ctx, b); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "gateway gone", func() error {
			if _, err := getGateway(ctx, hub, "cross-region-gateway"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("gateway still there: %v", err)
			}
			return nil
		})
	})
}

// TestRouteSyncInferencePoolImport covers the open-source provider: the hub creates the
// InferencePoolImport, lists the healthy exporting clusters in its status, and marks each
// member's pool Exported.
func TestRouteSyncInferencePoolImport(t *testing.T) {
	f := startFleet(t, "west", "east")
	ctx := context.Background()
	hub := f.hub.Client
	svc := routeService("oss", "west", "east")
	svc.Spec.Gateway.Provider = v1alpha1.ProviderInferencePoolImport
	svc.Spec.Gateway.ClassName = "istio"
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	exporting := func() (string, error) {
		imp := &infv1alpha1.InferencePoolImport{}
		if err := hub.Get(ctx, client.ObjectKeyFromObject(svc), imp); err != nil {
			return "", err
		}
		for _, c := range imp.Status.Controllers {
			if c.Name == render.ImportController {
				var names []string
				for _, e := range c.ExportingClusters {
					names = append(names, string(e.Name))
				}
				return strings.Join(names, ","), nil
			}
		}
		return "", fmt.Errorf("no controller entry in %+v", imp.Status)
	}
	poolExported := func(c client.Client) (metav1.ConditionStatus, error) {
		p := &infv1.InferencePool{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "oss"}, p); err != nil {
			return "", err
		}
		if p.Annotations["inference.networking.x-k8s.io/export"] != "ClusterSet" {
			return "", fmt.Errorf("pool not annotated for export: %v", p.Annotations)
		}
		for _, ps := range p.Status.Parents {
			if ps.ControllerName == render.ImportController && ps.ParentRef.Kind == "InferencePoolImport" {
				if c := meta.FindStatusCondition(ps.Conditions, "Exported"); c != nil {
					return c.Status, nil
				}
			}
		}
		return "", fmt.Errorf("no Exported condition in %+v", p.Status)
	}

	eventually(t, 20*time.Second, "import and route", func() error {
		if _, err := exporting(); err != nil {
			return err
		}
		r := &gwv1.HTTPRoute{}
		if err := hub.Get(ctx, client.ObjectKeyFromObject(svc), r); err != nil {
			return err
		}
		if *r.Spec.Rules[0].BackendRefs[0].Kind != "InferencePoolImport" {
			return fmt.Errorf("backend %+v", r.Spec.Rules[0].BackendRefs[0])
		}
		g, err := getGateway(ctx, hub, "cross-region-gateway")
		if err != nil {
			return err
		}
		if g.Spec.GatewayClassName != "istio" || len(g.Spec.Addresses) != 0 {
			return fmt.Errorf("gateway %+v", g.Spec)
		}
		return nil
	})
	markReady(ctx, t, f.members["west"].Client, "oss", 2)
	markReady(ctx, t, f.members["east"].Client, "oss", 2)
	eventually(t, 20*time.Second, "both clusters exporting", func() error {
		got, err := exporting()
		if err != nil || got != "east,west" {
			return fmt.Errorf("exporting %q %v", got, err)
		}
		for name, m := range map[string]client.Client{"west": f.members["west"].Client, "east": f.members["east"].Client} {
			if st, err := poolExported(m); err != nil || st != metav1.ConditionTrue {
				return fmt.Errorf("%s Exported %q %v", name, st, err)
			}
		}
		return nil
	})
	// east loses its replicas: it leaves the exporting clusters at once.
	markReady(ctx, t, f.members["east"].Client, "oss", 0)
	eventually(t, 20*time.Second, "east withdrawn", func() error {
		got, err := exporting()
		if err != nil || got != "west" {
			return fmt.Errorf("exporting %q %v", got, err)
		}
		if st, err := poolExported(f.members["east"].Client); err != nil || st != metav1.ConditionFalse {
			return fmt.Errorf("east Exported %q %v", st, err)
		}
		return nil
	})
	if err := hub.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "import gone", func() error {
		if err := hub.Get(ctx, client.ObjectKeyFromObject(svc), &infv1alpha1.InferencePoolImport{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("import still there: %v", err)
		}
		return nil
	})
}

// TestExportingClustersAtZero: the import lists the clusters with ready servers; a service
// that scales to zero and has none ready anywhere keeps every reachable exported pool, so
// that the gateway still hands requests to its endpoint pickers.
func TestExportingClustersAtZero(t *testing.T) {
	svc := &v1alpha1.FleetInferenceService{Status: v1alpha1.FleetInferenceServiceStatus{Clusters: []v1alpha1.ClusterStatus{
		{Name: "west", Reachable: true, Exported: true},
		{Name: "east", Reachable: true, Exported: true},
		{Name: "central", Reachable: false, Exported: true},
	}}}
	if got := controllers.ExportingClusters(svc); len(got) != 0 {
		t.Errorf("no ready server, fixed replicas: exporting %v, want none", got)
	}
	svc.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MinReplicas: new(int32), MaxReplicas: 4}
	if got := controllers.ExportingClusters(svc); !slices.Equal(got, []string{"west", "east"}) {
		t.Errorf("at zero: exporting %v, want the reachable [west east]", got)
	}
	svc.Status.Clusters[1].ReadyReplicas = 1
	if got := controllers.ExportingClusters(svc); !slices.Equal(got, []string{"east"}) {
		t.Errorf("one server ready in east: exporting %v, want [east]", got)
	}
}
