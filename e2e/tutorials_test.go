package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/internal/localfleet"
)

// onCluster places a tutorial's sample (written for the tutorial's own cluster) on one
// member of the local fleet.
func onCluster(svc *v1alpha1.FleetInferenceService, cluster string) *v1alpha1.FleetInferenceService {
	svc.Spec.Placement.Clusters = []v1alpha1.ClusterPlacement{{Name: cluster}}
	return svc
}

func present(ctx context.Context, c client.Client, apiVersion, kind, ns, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	return u, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u)
}

// TestTutorialsOnLocalFleet runs the single-cluster tutorials on the local fleet: two
// regional services (tutorials 002 and 000) sharing one regional Gateway and its
// body-based router in gke-west become Ready, the router and Gateway go with the last of
// them, and the fungibility recipe's ComputeClass (tutorial 003) follows its service from
// member to member, never overwriting a class of that name the hub does not own.
func TestTutorialsOnLocalFleet(t *testing.T) {
	lf := framework.StartFleet(t, localfleet.DefaultMembers())
	lf.RunHub(t, app.HubOptions{MemberTimeout: 5 * time.Second, MetricsAddr: freeAddr(t)})
	ctx := context.Background()
	hub := lf.HubProxy().Client
	west, east := lf.Member("gke-west").Client, lf.Member("gke-east").Client

	if err := hub.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-secret", Namespace: "default", Labels: map[string]string{v1alpha1.LabelCopyToMembers: "true"}},
		Data: map[string][]byte{"hf_api_token": []byte("hf_e2e")}}); err != nil {
		t.Fatal(err)
	}
	lora := onCluster(loadSample(t, "fleet_v1alpha1_h100-lora-regional.yaml"), "gke-west")
	lora.Spec.Gateway.BodyBasedRouting = true
	qwen := onCluster(loadSample(t, "fleet_v1alpha1_tpu-v5e.yaml"), "gke-west")
	qwen.Spec.Replicas = 1 // one 2x2 TPU v5e node per member
	for _, s := range []*v1alpha1.FleetInferenceService{lora, qwen} {
		if err := hub.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("regional services with body-based routing become Ready", func(t *testing.T) {
		for _, s := range []*v1alpha1.FleetInferenceService{lora, qwen} {
			framework.Eventually(t, 3*time.Minute, s.Name+" Ready", func() error {
				return serviceReady(getService(ctx, t, hub, client.ObjectKeyFromObject(s)))
			})
		}
		// Ready does not wait for a Gateway controller (there is none here), nor for the routes.
		framework.Eventually(t, 30*time.Second, "regional gateway, routes and router in gke-west", func() error {
			g := &gwv1.Gateway{}
			if err := west.Get(ctx, client.ObjectKey{Namespace: "default", Name: "inference-gateway"}, g); err != nil {
				return err
			}
			if g.Spec.GatewayClassName != "gke-l7-regional-external-managed" {
				return fmt.Errorf("gateway class %s", g.Spec.GatewayClassName)
			}
			for _, s := range []*v1alpha1.FleetInferenceService{lora, qwen} {
				r := &gwv1.HTTPRoute{}
				if err := west.Get(ctx, client.ObjectKeyFromObject(s), r); err != nil {
					return fmt.Errorf("route of %s: %w", s.Name, err)
				}
				if b := r.Spec.Rules[0].BackendRefs[0]; *b.Kind != "InferencePool" || string(b.Name) != s.Name {
					return fmt.Errorf("route of %s goes to %s %s, want its InferencePool", s.Name, *b.Kind, b.Name)
				}
				if got := getService(ctx, t, hub, client.ObjectKeyFromObject(s)); got.Status.Gateway == nil || got.Status.Gateway.Cluster != "gke-west" {
					return fmt.Errorf("%s status.gateway %+v", s.Name, got.Status.Gateway)
				}
			}
			_, err := present(ctx, west, "apps/v1", "Deployment", "default", render.BodyBasedRouterName("inference-gateway"))
			return err
		})
		for name, c := range map[string]client.Client{"the config cluster": hub, "gke-east": east} {
			if _, err := present(ctx, c, "gateway.networking.k8s.io/v1", "Gateway", "default", "inference-gateway"); !apierrors.IsNotFound(err) {
				t.Errorf("%s holds the regional gateway: %v", name, err)
			}
		}
	})

	t.Run("the router goes with the last service that uses it", func(t *testing.T) {
		router := render.BodyBasedRouterName("inference-gateway")
		if err := hub.Delete(ctx, lora); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, time.Minute, "lora's route gone, router kept for qwen", func() error {
			if _, err := present(ctx, west, "gateway.networking.k8s.io/v1", "HTTPRoute", "default", lora.Name); !apierrors.IsNotFound(err) {
				return fmt.Errorf("route of %s: %v", lora.Name, err)
			}
			_, err := present(ctx, west, "networking.gke.io/v1", "GCPRoutingExtension", "default", router)
			return err
		})
		if err := hub.Delete(ctx, qwen); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, time.Minute, "router and gateway gone", func() error {
			for _, k := range [][3]string{{"apps/v1", "Deployment", router}, {"networking.gke.io/v1", "GCPRoutingExtension", router}, {"gateway.networking.k8s.io/v1", "Gateway", "inference-gateway"}} {
				if o, err := present(ctx, west, k[0], k[1], "default", k[2]); !apierrors.IsNotFound(err) {
					q := &v1alpha1.FleetInferenceService{}
					qerr := hub.Get(ctx, client.ObjectKeyFromObject(qwen), q)
					return fmt.Errorf("%s %s: %v %v; qwen %v %v %+v", k[1], k[2], err, o.GetLabels(), qerr, q.Finalizers, q.Status.Conditions)
				}
			}
			return nil
		})
	})

	t.Run("a compute class follows its service and never overwrites another's", func(t *testing.T) {
		// Someone else's class of the same name in gke-west.
		theirs := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"priorities": []any{map[string]any{"nodepools": []any{"theirs"}}}}}}
		theirs.SetGroupVersionKind(render.GVKComputeClass)
		theirs.SetName("vllm-fallback")
		if err := west.Create(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		fungible := onCluster(loadSample(t, "fleet_v1alpha1_compute-class.yaml"), "gke-east")
		if err := hub.Create(ctx, fungible); err != nil {
			t.Fatal(err)
		}
		key := client.ObjectKeyFromObject(fungible)
		framework.Eventually(t, time.Minute, "the class in gke-east", func() error {
			cc, err := present(ctx, east, "cloud.google.com/v1", "ComputeClass", "", "vllm-fallback")
			if err != nil {
				return err
			}
			if cc.GetLabels()[render.LabelService] != fungible.Name {
				return fmt.Errorf("labels %v", cc.GetLabels())
			}
			return nil
		})
		framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Placement.Clusters = []v1alpha1.ClusterPlacement{{Name: "gke-west"}}
		})
		framework.Eventually(t, time.Minute, "conflict in gke-west, class gone from gke-east", func() error {
			svc := getService(ctx, t, hub, key)
			p := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionPropagated)
			if p == nil || p.Reason != controllers.ReasonConflict {
				return fmt.Errorf("Propagated %+v", p)
			}
			if msg := clusterStatus(svc, "gke-west").Message; !strings.Contains(msg, "ComputeClass vllm-fallback") {
				return fmt.Errorf("gke-west message %q does not name the class", msg)
			}
			if cc, err := present(ctx, east, "cloud.google.com/v1", "ComputeClass", "", "vllm-fallback"); !apierrors.IsNotFound(err) {
				_, derr := present(ctx, east, "apps/v1", "Deployment", "default", fungible.Name)
				return fmt.Errorf("gke-east still holds the class: %v %v %v; deployment %v; clusters %+v", err, cc.GetLabels(), cc.GetDeletionTimestamp(), derr, svc.Status.Clusters)
			}
			return nil
		})
		cc, err := present(ctx, west, "cloud.google.com/v1", "ComputeClass", "", "vllm-fallback")
		if err != nil {
			t.Fatal(err)
		}
		pools, _, _ := unstructured.NestedSlice(cc.Object, "spec", "priorities")
		if len(pools) != 1 || cc.GetLabels()[render.LabelService] != "" {
			t.Errorf("the unowned class was changed: priorities %v labels %v", pools, cc.GetLabels())
		}
		if err := hub.Delete(ctx, fungible); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, time.Minute, "service gone", func() error {
			if err := hub.Get(ctx, key, &v1alpha1.FleetInferenceService{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("service: %v", err)
			}
			return nil
		})
		if _, err := present(ctx, west, "cloud.google.com/v1", "ComputeClass", "", "vllm-fallback"); err != nil {
			t.Errorf("the unowned class went with the service: %v", err)
		}
	})
}
