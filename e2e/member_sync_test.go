// Package e2e holds the multi-cluster end-to-end suites. They run on the built-in local
// fleet: a hub and member clusters that are real control planes with kwok nodes.
package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	infv1alpha2 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/internal/localfleet"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func loadSample(t *testing.T, name string) *v1alpha1.FleetInferenceService {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(framework.Root(), "config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	svc := &v1alpha1.FleetInferenceService{}
	if err := yaml.UnmarshalStrict(raw, svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

// createTwoRegionSample creates the two-region sample in the hub with the token Secret it
// names.
func createTwoRegionSample(ctx context.Context, t *testing.T, hub client.Client) *v1alpha1.FleetInferenceService {
	t.Helper()
	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	createToken(ctx, t, hub)
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

// createToken creates the Hugging Face token Secret the samples name, in the hub.
func createToken(ctx context.Context, t *testing.T, hub client.Client) {
	t.Helper()
	if err := hub.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-token", Namespace: "default", Labels: map[string]string{v1alpha1.LabelCopyToMembers: "true"}},
		Data: map[string][]byte{"token": []byte("hf_e2e")}}); err != nil {
		t.Fatal(err)
	}
}

// serviceReady says why a service is not Ready yet, or nil.
func serviceReady(svc *v1alpha1.FleetInferenceService) error {
	c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue {
		return fmt.Errorf("Ready %+v, clusters %+v", c, svc.Status.Clusters)
	}
	return nil
}

func modelDeployment(ctx context.Context, c client.Client, key client.ObjectKey) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	return d, c.Get(ctx, key, d)
}

func getService(ctx context.Context, t *testing.T, hub client.Client, key client.ObjectKey) *v1alpha1.FleetInferenceService {
	t.Helper()
	svc := &v1alpha1.FleetInferenceService{}
	if err := hub.Get(ctx, key, svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

func clusterStatus(svc *v1alpha1.FleetInferenceService, name string) v1alpha1.ClusterStatus {
	for _, c := range svc.Status.Clusters {
		if c.Name == name {
			return c
		}
	}
	return v1alpha1.ClusterStatus{}
}

// TestMemberSync is the member-sync acceptance run on a hub and two members with kwok GPU
// nodes: rollout to ready replicas, drift, conflicts, spec changes, a member API server
// killed during a change, and deletion. It runs on the fleet framework.FleetEnv names.
func TestMemberSync(t *testing.T) {
	lf := framework.StartFleet(t, localfleet.DefaultMembers())
	lf.RunHub(t, app.HubOptions{MemberTimeout: 5 * time.Second, MetricsAddr: freeAddr(t)})
	ctx := context.Background()
	hub := lf.HubProxy().Client
	west, east := lf.Member("gke-west").Client, lf.Member("gke-east").Client
	members := map[string]client.Client{"gke-west": west, "gke-east": east}

	applied := time.Now()
	svc := createTwoRegionSample(ctx, t, hub)
	key := client.ObjectKeyFromObject(svc)

	t.Run("ready in both members within 30s", func(t *testing.T) {
		framework.Eventually(t, 30*time.Second, "Ready", func() error {
			got := getService(ctx, t, hub, key)
			if err := serviceReady(got); err != nil {
				return err
			}
			for name := range members {
				st := clusterStatus(got, name)
				if !st.Reachable || !st.Exported || st.DesiredReplicas != 3 || st.ReadyReplicas != 3 || st.Region == "" {
					return fmt.Errorf("%s status %+v", name, st)
				}
			}
			return nil
		})
		t.Logf("ready in both members %s after apply", time.Since(applied).Round(100*time.Millisecond))
		for name, m := range members {
			d, err := modelDeployment(ctx, m, key)
			if err != nil || d.Status.ReadyReplicas != 3 {
				t.Fatalf("%s model deployment: %v %+v", name, err, d.Status)
			}
			for _, obj := range []client.Object{&infv1.InferencePool{}, &infv1alpha2.InferenceObjective{}, &corev1.ConfigMap{}, &corev1.Secret{}, &appsv1.Deployment{}} {
				name := map[string]string{"*v1.InferencePool": svc.Name, "*v1alpha2.InferenceObjective": "food-review",
					"*v1.ConfigMap": render.LoraConfigMapName(svc), "*v1.Secret": render.TokenSecretName(svc), "*v1.Deployment": render.EndpointPickerName(svc)}[fmt.Sprintf("%T", obj)]
				if err := m.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, obj); err != nil {
					t.Errorf("%s: %T %s: %v", name, obj, name, err)
				}
			}
		}
	})

	t.Run("kubectl get fis shows the printer columns", func(t *testing.T) {
		out, err := exec.Command(filepath.Join(framework.BinDir(), "kubectl"), "--kubeconfig", lf.HubProxy().KubeconfigPath, "get", "fis", "-n", "default").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NAME READY REPLICAS CLUSTERS GATEWAY AGE" {
			t.Fatalf("header %q", lines[0])
		}
		row := strings.Fields(lines[1])
		if len(row) != 6 || row[0] != svc.Name || row[1] != "True" || row[2] != "6/6" || row[3] != "2/2" || row[4] != "cross-region-gateway" {
			t.Fatalf("row %q", lines[1])
		}
	})

	t.Run("metrics show every cluster", func(t *testing.T) {
		framework.Eventually(t, 15*time.Second, "per-cluster series", func() error {
			text, err := lf.Metrics(ctx)
			if err != nil {
				return err
			}
			for _, want := range []string{
				`inferfleet_cluster_ready_replicas{cluster="gke-west",namespace="default",service="vllm-llama3-8b-instruct"} 3`,
				`inferfleet_cluster_ready_replicas{cluster="gke-east",namespace="default",service="vllm-llama3-8b-instruct"} 3`,
				`inferfleet_cluster_desired_replicas{cluster="gke-east",namespace="default",service="vllm-llama3-8b-instruct"} 3`,
				`inferfleet_service_cluster_health{cluster="gke-west",namespace="default",service="vllm-llama3-8b-instruct",state="Healthy"} 1`,
				`inferfleet_cluster_reachable{cluster="gke-east"} 1`,
				`inferfleet_propagation_seconds_count{cluster="gke-west"}`,
				`inferfleet_reconcile_duration_seconds_count{controller="member-sync"}`,
			} {
				if !strings.Contains(text, want) {
					return fmt.Errorf("no %s in /metrics", want)
				}
			}
			return nil
		})
	})

	t.Run("edited Deployment is reverted", func(t *testing.T) {
		framework.Eventually(t, 10*time.Second, "edit", func() error {
			d, err := modelDeployment(ctx, west, key)
			if err != nil {
				return err
			}
			d.Spec.Replicas = ptr.To[int32](5)
			return west.Update(ctx, d)
		})
		framework.Eventually(t, 10*time.Second, "replicas back to 3", func() error {
			d, err := modelDeployment(ctx, west, key)
			if err != nil {
				return err
			}
			if *d.Spec.Replicas != 3 {
				return fmt.Errorf("replicas %d", *d.Spec.Replicas)
			}
			return nil
		})
	})

	t.Run("deleted InferencePool is recreated", func(t *testing.T) {
		pool := &infv1.InferencePool{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: "default"}}
		if err := east.Delete(ctx, pool); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, 10*time.Second, "pool recreated", func() error {
			p := &infv1.InferencePool{}
			if err := east.Get(ctx, key, p); err != nil {
				return err
			}
			if p.Annotations[render.ExportAnnotationGKE] != render.ExportValueGKE {
				return fmt.Errorf("recreated without export annotation")
			}
			return nil
		})
	})

	t.Run("unowned objects are reported, never overwritten", func(t *testing.T) {
		// Someone else's Deployment and ConfigMap in east carry the names a second service needs.
		foreign := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "squatter", Namespace: "default", Labels: map[string]string{"team": "other"}},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](0),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "other"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "other"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "theirs:1"}}}},
			},
		}
		foreignCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "squatter-adapters", Namespace: "default"}, Data: map[string]string{"theirs": "1"}}
		for _, o := range []client.Object{foreign, foreignCM} {
			if err := east.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		second := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
		second.Name, second.Spec.Replicas = "squatter", 2
		second.Spec.Objectives = nil // objective names are the namespace's, and the first service holds them
		if err := hub.Create(ctx, second); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, 20*time.Second, "conflict reported, west synced", func() error {
			got := getService(ctx, t, hub, client.ObjectKeyFromObject(second))
			st := clusterStatus(got, "gke-east")
			if !strings.Contains(st.Message, "Deployment default/squatter exists and is not owned") || !strings.Contains(st.Message, "ConfigMap default/squatter-adapters") {
				return fmt.Errorf("east status %+v", st)
			}
			if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionPropagated); c == nil || c.Reason != controllers.ReasonConflict {
				return fmt.Errorf("Propagated %+v", c)
			}
			if w := clusterStatus(got, "gke-west"); w.ReadyReplicas != 1 || w.Message != "" {
				return fmt.Errorf("west %+v", w)
			}
			return nil
		})
		if err := hub.Delete(ctx, second); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, 20*time.Second, "second service gone", func() error {
			if err := hub.Get(ctx, client.ObjectKeyFromObject(second), &v1alpha1.FleetInferenceService{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there (%v)", err)
			}
			return nil
		})
		d, err := modelDeployment(ctx, east, client.ObjectKeyFromObject(foreign))
		if err != nil {
			t.Fatalf("foreign Deployment deleted: %v", err)
		}
		if d.Spec.Template.Spec.Containers[0].Image != "theirs:1" || *d.Spec.Replicas != 0 || d.Labels[render.LabelService] != "" {
			t.Errorf("foreign Deployment changed: %+v", d.Spec)
		}
		cm := &corev1.ConfigMap{}
		if err := east.Get(ctx, client.ObjectKeyFromObject(foreignCM), cm); err != nil || cm.Data["theirs"] != "1" {
			t.Errorf("foreign ConfigMap changed or deleted: %v %v", err, cm.Data)
		}
	})

	t.Run("spec change rolls out to both", func(t *testing.T) {
		framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Replicas = 4
			s.Spec.Model.Server.Args = append(s.Spec.Model.Server.Args, "--max-model-len=4096")
		})
		for name, m := range members {
			framework.Eventually(t, 20*time.Second, name+" rolled out", func() error {
				d, err := modelDeployment(ctx, m, key)
				if err != nil {
					return err
				}
				if *d.Spec.Replicas != 2 || !framework.HasServerArg(d.Spec.Template.Spec.Containers[0], "--max-model-len=4096") || d.Status.ReadyReplicas != 2 {
					return fmt.Errorf("replicas %d ready %d args %v", *d.Spec.Replicas, d.Status.ReadyReplicas, d.Spec.Template.Spec.Containers[0].Args)
				}
				return nil
			})
		}
	})

	t.Run("member API server down during a spec change", func(t *testing.T) {
		eastCluster := lf.Member("gke-east").Faults
		if err := eastCluster.StopAPIServer(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		restarted := false
		t.Cleanup(func() {
			if !restarted {
				_ = eastCluster.StartAPIServer(context.Background())
			}
		})
		framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Model.Server.Args = append(s.Spec.Model.Server.Args, "--enable-prefix-caching")
		})
		framework.Eventually(t, 30*time.Second, "west converged, east reported unreachable", func() error {
			d, err := modelDeployment(ctx, west, key)
			if err != nil {
				return err
			}
			if !framework.HasServerArg(d.Spec.Template.Spec.Containers[0], "--enable-prefix-caching") {
				return fmt.Errorf("west not converged")
			}
			got := getService(ctx, t, hub, key)
			if st := clusterStatus(got, "gke-east"); st.Reachable || st.Message == "" {
				return fmt.Errorf("east status %+v", st)
			}
			return nil
		})
		if err := eastCluster.StartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		restarted = true
		framework.Eventually(t, 45*time.Second, "east converged after restart", func() error {
			d, err := modelDeployment(ctx, east, key)
			if err != nil {
				return err
			}
			if !framework.HasServerArg(d.Spec.Template.Spec.Containers[0], "--enable-prefix-caching") {
				return fmt.Errorf("east not converged")
			}
			got := getService(ctx, t, hub, key)
			if st := clusterStatus(got, "gke-east"); !st.Reachable || st.Message != "" {
				return fmt.Errorf("east status %+v", st)
			}
			return nil
		})
	})

	t.Run("deleting the service empties both members", func(t *testing.T) {
		if err := hub.Delete(ctx, svc); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, 30*time.Second, "everything gone", func() error {
			if err := hub.Get(ctx, key, &v1alpha1.FleetInferenceService{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("service still there (%v)", err)
			}
			for name, m := range members {
				for _, l := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ConfigMapList{}, &corev1.SecretList{}, &corev1.ServiceList{}, &infv1.InferencePoolList{}, &infv1alpha2.InferenceObjectiveList{}} {
					if err := m.List(ctx, l, client.MatchingLabels{render.LabelService: svc.Name}); err != nil {
						return err
					}
					if n := meta.LenList(l); n > 0 {
						return fmt.Errorf("%s still holds %d %T", name, n, l)
					}
				}
			}
			return nil
		})
	})
}
