package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/e2e/framework"
)

// regionalService is a service in one member behind the regional Gateway "inference-gateway".
func regionalService(name, cluster string, bodyBased bool) *v1alpha1.FleetInferenceService {
	s := routeService(name, cluster)
	s.Spec.Gateway.Name = "inference-gateway"
	s.Spec.Gateway.ClassName = "gke-l7-regional-external-managed"
	s.Spec.Gateway.BodyBasedRouting = bodyBased
	return s
}

// routerExists says whether the body-based router of a Gateway is in a cluster, and
// fails when only some of its objects are.
func routerExists(ctx context.Context, c client.Client, gateway string) (bool, error) {
	name := render.BodyBasedRouterName(gateway)
	found := 0
	for _, k := range []struct{ apiVersion, kind, name string }{
		{"apps/v1", "Deployment", name},
		{"v1", "Service", name},
		{"v1", "ServiceAccount", name + "-" + gateway},
		{"networking.gke.io/v1", "GCPRoutingExtension", name},
		{"networking.gke.io/v1", "HealthCheckPolicy", name + "-healthcheck"},
	} {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(k.apiVersion)
		u.SetKind(k.kind)
		switch err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: k.name}, u); {
		case err == nil:
			found++
		case !apierrors.IsNotFound(err):
			return false, err
		}
	}
	if found != 0 && found != 5 {
		return false, fmt.Errorf("%d of the router's 5 objects exist", found)
	}
	return found == 5, nil
}

// TestRouteSyncRegional covers mode Regional: the Gateway, the route to the InferencePool
// and the body-based router live in the service's member, not the config cluster; they are
// shared by the services on that Gateway and go with the last; a service that moves to
// another member takes its routes along; a selector that finds two clusters is refused.
func TestRouteSyncRegional(t *testing.T) {
	f := startFleet(t, "west", "east")
	ctx := context.Background()
	hub, west, east := f.hub.Client, f.members["west"].Client, f.members["east"].Client
	a, b := regionalService("alpha", "west", true), regionalService("beta", "west", false)
	for _, s := range []*v1alpha1.FleetInferenceService{a, b} {
		if err := hub.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("gateway, routes and router in the member", func(t *testing.T) {
		eventually(t, 30*time.Second, "regional objects in west", func() error {
			g, err := getGateway(ctx, west, "inference-gateway")
			if err != nil {
				return err
			}
			if g.Spec.GatewayClassName != "gke-l7-regional-external-managed" || len(g.Spec.Addresses) != 0 {
				return fmt.Errorf("gateway class %s addresses %v", g.Spec.GatewayClassName, g.Spec.Addresses)
			}
			for _, s := range []string{"alpha", "beta"} {
				r := &gwv1.HTTPRoute{}
				if err := west.Get(ctx, client.ObjectKey{Namespace: "default", Name: s}, r); err != nil {
					return err
				}
				if b := r.Spec.Rules[0].BackendRefs[0]; *b.Kind != "InferencePool" || string(b.Name) != s {
					return fmt.Errorf("route %s backend %v", s, b)
				}
			}
			if ok, err := routerExists(ctx, west, "inference-gateway"); !ok || err != nil {
				return fmt.Errorf("router in west: %v %v", ok, err)
			}
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, client.ObjectKeyFromObject(a), got); err != nil {
				return err
			}
			if got.Status.Gateway == nil || got.Status.Gateway.Cluster != "west" {
				return fmt.Errorf("status.gateway %+v, want cluster west", got.Status.Gateway)
			}
			return nil
		})
		for name, c := range map[string]client.Client{"the config cluster": hub, "east": east} {
			if _, err := getGateway(ctx, c, "inference-gateway"); !apierrors.IsNotFound(err) {
				t.Errorf("%s holds a Gateway inference-gateway: %v", name, err)
			}
			if ok, err := routerExists(ctx, c, "inference-gateway"); ok || err != nil {
				t.Errorf("%s holds the router: %v %v", name, ok, err)
			}
		}
		// The pool a regional Gateway routes to is not exported: nothing imports it.
		eventually(t, 10*time.Second, "pool in west", func() error {
			p := &unstructured.Unstructured{}
			p.SetGroupVersionKind(render.GVKInferencePool)
			if err := west.Get(ctx, client.ObjectKey{Namespace: "default", Name: "alpha"}, p); err != nil {
				return err
			}
			if len(p.GetAnnotations()[render.ExportAnnotationGKE]) != 0 {
				return fmt.Errorf("regional pool exported: %v", p.GetAnnotations())
			}
			return nil
		})
	})

	t.Run("router goes with the last service that routes on the body", func(t *testing.T) {
		if err := hub.Delete(ctx, a); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "router removed, gateway kept", func() error {
			if ok, err := routerExists(ctx, west, "inference-gateway"); ok || err != nil {
				return fmt.Errorf("router still in west: %v %v", ok, err)
			}
			if _, err := getGateway(ctx, west, "inference-gateway"); err != nil {
				return fmt.Errorf("gateway of beta: %w", err)
			}
			r := &gwv1.HTTPRoute{}
			if err := west.Get(ctx, client.ObjectKey{Namespace: "default", Name: "alpha"}, r); !apierrors.IsNotFound(err) {
				return fmt.Errorf("alpha's route: %v", err)
			}
			return nil
		})
	})

	t.Run("a service that moves takes its routes along", func(t *testing.T) {
		framework.UpdateService(t, hub, client.ObjectKeyFromObject(b), func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Placement.Clusters = []v1alpha1.ClusterPlacement{{Name: "east"}}
		})
		eventually(t, 30*time.Second, "gateway moved to east", func() error {
			if _, err := getGateway(ctx, east, "inference-gateway"); err != nil {
				return err
			}
			if _, err := getGateway(ctx, west, "inference-gateway"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("west still holds the gateway: %v", err)
			}
			r := &gwv1.HTTPRoute{}
			if err := west.Get(ctx, client.ObjectKey{Namespace: "default", Name: "beta"}, r); !apierrors.IsNotFound(err) {
				return fmt.Errorf("west still holds beta's route: %v", err)
			}
			return east.Get(ctx, client.ObjectKey{Namespace: "default", Name: "beta"}, r)
		})
	})

	t.Run("the last service takes the gateway", func(t *testing.T) {
		if err := hub.Delete(ctx, b); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "gateway removed from east", func() error {
			if _, err := getGateway(ctx, east, "inference-gateway"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("gateway: %v", err)
			}
			return nil
		})
	})

	t.Run("a selector that finds two clusters is refused", func(t *testing.T) {
		s := regionalService("gamma", "west", false)
		s.Spec.Placement.Clusters = nil
		s.Spec.Placement.ClusterSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gpu"}}
		if err := hub.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "routes and propagation refused", func() error {
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, client.ObjectKeyFromObject(s), got); err != nil {
				return err
			}
			for _, typ := range []string{v1alpha1.ConditionRoutesProgrammed, v1alpha1.ConditionPropagated} {
				c := meta.FindStatusCondition(got.Status.Conditions, typ)
				if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "spec.placement") {
					return fmt.Errorf("%s: %+v", typ, c)
				}
			}
			return nil
		})
		for name, c := range map[string]client.Client{"west": west, "east": east} {
			d := &appsv1.Deployment{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "gamma"}, d); !apierrors.IsNotFound(err) {
				t.Errorf("%s runs gamma although its placement is refused: %v", name, err)
			}
		}
	})
}

// TestRouteSyncBodyBasedRouterInConfigCluster covers a multi-cluster Gateway: the router
// runs beside it in the config cluster and goes when its service stops routing on the body.
func TestRouteSyncBodyBasedRouterInConfigCluster(t *testing.T) {
	f := startFleet(t, "west", "east")
	ctx := context.Background()
	hub := f.hub.Client
	s := routeService("alpha", "west", "east")
	s.Spec.Gateway.BodyBasedRouting = true
	if err := hub.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "router in the config cluster", func() error {
		if ok, err := routerExists(ctx, hub, v1alpha1.DefaultGatewayName); !ok || err != nil {
			return fmt.Errorf("router: %v %v", ok, err)
		}
		ext := &unstructured.Unstructured{}
		ext.SetGroupVersionKind(render.GVKGCPRoutingExtension)
		if err := hub.Get(ctx, client.ObjectKey{Namespace: "default", Name: render.BodyBasedRouterName(v1alpha1.DefaultGatewayName)}, ext); err != nil {
			return err
		}
		refs, _, _ := unstructured.NestedSlice(ext.Object, "spec", "targetRefs")
		if len(refs) != 1 || refs[0].(map[string]any)["name"] != v1alpha1.DefaultGatewayName {
			return fmt.Errorf("extension targets %v", refs)
		}
		return nil
	})
	framework.UpdateService(t, hub, client.ObjectKeyFromObject(s), func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Gateway.BodyBasedRouting = false
	})
	eventually(t, 30*time.Second, "router removed, gateway kept", func() error {
		if ok, err := routerExists(ctx, hub, v1alpha1.DefaultGatewayName); ok || err != nil {
			return fmt.Errorf("router: %v %v", ok, err)
		}
		_, err := getGateway(ctx, hub, v1alpha1.DefaultGatewayName)
		return err
	})
}

// TestRegionalNamespaceRelease covers the namespace the hub creates in a member that holds
// both a service's model servers and its regional Gateway's body-based router: member sync
// and route sync each remove their part in their own time, and whichever finishes last
// deletes the namespace, when the service moves away and when it is deleted.
func TestRegionalNamespaceRelease(t *testing.T) {
	f := startFleet(t, "west", "east")
	ctx := context.Background()
	hub, west, east := f.hub.Client, f.members["west"].Client, f.members["east"].Client
	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "serving"}}); err != nil {
		t.Fatal(err)
	}
	s := regionalService("alpha", "west", true)
	s.Namespace = "serving"
	if err := hub.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	routerIn := func(c client.Client) error {
		d := &appsv1.Deployment{}
		return c.Get(ctx, client.ObjectKey{Namespace: "serving", Name: render.BodyBasedRouterName("inference-gateway")}, d)
	}
	released := func(c client.Client) error {
		ns := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: "serving"}, ns); err == nil && ns.DeletionTimestamp.IsZero() {
			var ds appsv1.DeploymentList
			if err := c.List(ctx, &ds, client.InNamespace("serving")); err != nil {
				return err
			}
			var names []string
			for _, d := range ds.Items {
				names = append(names, d.Name)
			}
			return fmt.Errorf("namespace serving still active (created by hub: %q), with Deployments %v", ns.Annotations[render.AnnotationCreatedNamespace], names)
		} else if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		return nil
	}
	eventually(t, 30*time.Second, "model servers and router in west", func() error {
		if err := west.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "alpha"}, &appsv1.Deployment{}); err != nil {
			return err
		}
		return routerIn(west)
	})

	framework.UpdateService(t, hub, client.ObjectKeyFromObject(s), func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Placement.Clusters = []v1alpha1.ClusterPlacement{{Name: "east"}}
	})
	eventually(t, 30*time.Second, "west's namespace released after the move", func() error {
		if err := routerIn(east); err != nil {
			return fmt.Errorf("router in east: %w", err)
		}
		return released(west)
	})

	if err := hub.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "east's namespace released after the deletion", func() error {
		return released(east)
	})
}
