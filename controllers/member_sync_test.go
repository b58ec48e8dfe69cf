package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	infv1alpha2 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/e2e/framework"
)

// fleetEnv is a hub and two members, each a real kube-apiserver, with the hub manager
// running against them.
type fleetEnv struct {
	hub      *framework.Env
	members  map[string]*framework.Env
	startHub func() (stop func())
	stopHub  func()
	// mgr is the running hub's manager.
	mgr mcmanager.Manager
}

func startFleet(t *testing.T, names ...string) *fleetEnv {
	t.Helper()
	return startFleetWith(t, app.HubOptions{}, names...)
}

func startFleetWith(t *testing.T, o app.HubOptions, names ...string) *fleetEnv {
	t.Helper()
	return startFleetVia(t, o, nil, names...)
}

// startFleetVia is startFleetWith where the hub reaches each member through the
// rest.Config via returns (nil: directly).
func startFleetVia(t *testing.T, o app.HubOptions, via func(name string, cfg *rest.Config) *rest.Config, names ...string) *fleetEnv {
	t.Helper()
	f := &fleetEnv{members: map[string]*framework.Env{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(1 + len(names))
	go func() { defer wg.Done(); f.hub = framework.Start(t, framework.CRDs()) }()
	for _, n := range names {
		go func() {
			defer wg.Done()
			e := framework.Start(t, framework.CRDs())
			mu.Lock()
			f.members[n] = e
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	regions := []string{"europe-west3", "us-east4", "us-central1"}
	for i, n := range names {
		cfg := f.members[n].Config
		if via != nil {
			cfg = via(n, cfg)
		}
		kc, err := framework.Kubeconfig(cfg, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := framework.RegisterMember(ctx, f.hub.Client, n, regions[i%len(regions)], map[string]string{"tier": "gpu"}, kc); err != nil {
			t.Fatal(err)
		}
	}
	o.MetricsAddr, o.ProbeAddr, o.SeveralPerProcess = "0", "0", true
	if o.MemberTimeout == 0 {
		o.MemberTimeout = 5 * time.Second
	}
	f.startHub = func() (stop func()) {
		hubCtx, stopHub := context.WithCancel(ctx)
		mgr, err := app.NewHub(hubCtx, f.hub.Config, o)
		if err != nil {
			t.Fatal(err)
		}
		f.mgr = mgr
		done := make(chan struct{})
		go func() {
			defer close(done)
			framework.ManagerStopped(t, "hub manager", mgr.Start(hubCtx))
		}()
		return func() { stopHub(); <-done }
	}
	f.stopHub = f.startHub()
	t.Cleanup(func() { f.stopHub(); cancel() })
	return f
}

// restartHub stops the hub manager and starts a new one, as a crashed hub pod would be.
func (f *fleetEnv) restartHub() {
	f.stopHub()
	f.stopHub = f.startHub()
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	framework.Eventually(t, timeout, what, cond)
}

func twoRegionService(clusters ...string) *v1alpha1.FleetInferenceService {
	var placement []v1alpha1.ClusterPlacement
	for _, c := range clusters {
		placement = append(placement, v1alpha1.ClusterPlacement{Name: c})
	}
	return &v1alpha1.FleetInferenceService{
		ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: "serving"},
		Spec: v1alpha1.FleetInferenceServiceSpec{
			Model: v1alpha1.ModelSpec{
				Name:         "meta-llama/Llama-3.1-8B-Instruct",
				Server:       v1alpha1.ServerSpec{HuggingFaceTokenSecretRef: &v1alpha1.SecretKeyRef{Name: "hf-token", Key: "token"}},
				Accelerator:  &v1alpha1.AcceleratorSpec{Type: "nvidia-h100-80gb", Count: 1},
				LoraAdapters: []v1alpha1.LoraAdapter{{ID: "food-review-1", Source: "Kawon/llama3.1-food-finetune_v14_r8"}},
			},
			Objectives: []v1alpha1.Objective{{Name: "food-review", Priority: ptr.To[int32](10)}},
			Replicas:   6,
			Placement:  v1alpha1.PlacementSpec{Clusters: placement},
		},
	}
}

// sharedWithMembers labels a token Secret as one the hub may copy to members.
var sharedWithMembers = map[string]string{v1alpha1.LabelCopyToMembers: "true"}

// createToken creates the namespace serving and the token Secret twoRegionService names.
func createToken(ctx context.Context, t *testing.T, hub client.Client) {
	t.Helper()
	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "serving"}}); err != nil {
		t.Fatal(err)
	}
	if err := hub.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-token", Namespace: "serving", Labels: sharedWithMembers},
		Data: map[string][]byte{"token": []byte("hf_secret")}}); err != nil {
		t.Fatal(err)
	}
}

func getDeployment(ctx context.Context, c client.Client, ns, name string) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	return d, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)
}

func condition(svc *v1alpha1.FleetInferenceService, typ string) *metav1.Condition {
	return meta.FindStatusCondition(svc.Status.Conditions, typ)
}

// TestMemberSync drives one service through its life on a hub and two members: rollout,
// status, drift, conflicts, no-op reconciles, spec changes, unselecting a cluster and
// deletion.
func TestMemberSync(t *testing.T) {
	f := startFleet(t, "west", "east")
	ctx := context.Background()
	hub := f.hub.Client
	west, east := f.members["west"].Client, f.members["east"].Client

	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "serving"}}); err != nil {
		t.Fatal(err)
	}
	if err := hub.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-token", Namespace: "serving", Labels: sharedWithMembers},
		Data: map[string][]byte{"token": []byte("hf_secret"), "unrelated": []byte("stays in the hub")}}); err != nil {
		t.Fatal(err)
	}
	// An object in east that has the LoRA ConfigMap's name but is not ours.
	if err := east.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "serving"}}); err != nil {
		t.Fatal(err)
	}
	foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "llama-adapters", Namespace: "serving"}, Data: map[string]string{"mine": "yes"}}
	if err := east.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}

	svc := twoRegionService("west", "east")
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)

	t.Run("rollout to both members", func(t *testing.T) {
		for name, m := range map[string]client.Client{"west": west, "east": east} {
			eventually(t, 20*time.Second, name+" objects", func() error {
				d, err := getDeployment(ctx, m, "serving", "llama")
				if err != nil {
					return err
				}
				if *d.Spec.Replicas != 3 {
					return fmt.Errorf("replicas %d, want 3", *d.Spec.Replicas)
				}
				pool := &infv1.InferencePool{}
				if err := m.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "llama"}, pool); err != nil {
					return err
				}
				if pool.Annotations[render.ExportAnnotationGKE] != "True" {
					return fmt.Errorf("pool not exported: %v", pool.Annotations)
				}
				obj := &infv1alpha2.InferenceObjective{}
				if err := m.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "food-review"}, obj); err != nil {
					return err
				}
				s := &corev1.Secret{}
				if err := m.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "llama-hf-token"}, s); err != nil {
					return err
				}
				if string(s.Data["token"]) != "hf_secret" || len(s.Data) != 1 {
					return fmt.Errorf("token secret copied wrong: %v", s.Data)
				}
				am := &unstructured.Unstructured{}
				am.SetGroupVersionKind(render.GVKAutoscalingMetric)
				if err := m.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "llama"}, am); err != nil {
					return err
				}
				epp := &appsv1.Deployment{}
				return m.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "llama-epp"}, epp)
			})
		}
	})

	t.Run("member caches hold objects without managedFields", func(t *testing.T) {
		cl, err := f.mgr.GetCluster(ctx, "west")
		if err != nil {
			t.Fatal(err)
		}
		live, err := getDeployment(ctx, west, "serving", "llama")
		if err != nil {
			t.Fatal(err)
		}
		if len(live.ManagedFields) == 0 {
			t.Fatal("the member's Deployment has no managedFields: nothing to check")
		}
		cached := &appsv1.Deployment{}
		if err := cl.GetCache().Get(ctx, client.ObjectKey{Namespace: "serving", Name: "llama"}, cached); err != nil {
			t.Fatal(err)
		}
		if len(cached.ManagedFields) != 0 || cached.Spec.Replicas == nil {
			t.Errorf("the hub's cached copy keeps %d managedFields entries (replicas %v)", len(cached.ManagedFields), cached.Spec.Replicas)
		}
	})
	t.Run("each member's sync has its own event", func(t *testing.T) {
		// Without the cluster as related object, the recorder would count east's event in
		// west's series and its note would never show.
		eventually(t, 20*time.Second, "an event per member", func() error {
			var evs eventsv1.EventList
			if err := hub.List(ctx, &evs, client.InNamespace("serving")); err != nil {
				return err
			}
			seen := map[string]string{}
			for _, e := range evs.Items {
				if e.Regarding.Name != "llama" || e.Action != "Sync" || e.Related == nil {
					continue
				}
				if e.Related.Kind != "Secret" || e.Related.Namespace != "inferfleet-system" {
					return fmt.Errorf("event %s related to %+v, want a registration Secret", e.Name, *e.Related)
				}
				if !strings.HasPrefix(e.Note, e.Related.Name+":") {
					return fmt.Errorf("event related to %s says %q", e.Related.Name, e.Note)
				}
				seen[e.Related.Name] = e.Note
			}
			if seen["west"] == "" || seen["east"] == "" {
				return fmt.Errorf("sync events by member: %v", seen)
			}
			return nil
		})
	})

	t.Run("conflict reported, foreign object untouched", func(t *testing.T) {
		eventually(t, 10*time.Second, "conflict in status", func() error {
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, key, got); err != nil {
				return err
			}
			for _, c := range got.Status.Clusters {
				if c.Name == "east" && strings.Contains(c.Message, "ConfigMap serving/llama-adapters exists and is not owned") {
					if p := condition(got, v1alpha1.ConditionPropagated); p == nil || p.Reason != controllers.ReasonConflict {
						return fmt.Errorf("Propagated = %+v", p)
					}
					return nil
				}
			}
			return fmt.Errorf("no conflict in %+v", got.Status.Clusters)
		})
		cm := &corev1.ConfigMap{}
		if err := east.Get(ctx, client.ObjectKeyFromObject(foreign), cm); err != nil {
			t.Fatal(err)
		}
		if cm.Data["mine"] != "yes" || cm.Labels[render.LabelService] != "" {
			t.Fatalf("foreign ConfigMap was changed: %+v", cm)
		}
		// The rest of east still converged.
		if _, err := getDeployment(ctx, east, "serving", "llama"); err != nil {
			t.Fatalf("east not synced past the conflict: %v", err)
		}
		if err := east.Delete(ctx, cm); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ready with per-cluster status", func(t *testing.T) {
		// envtest runs no controllers: play the Deployment controller's part.
		for _, m := range []client.Client{west, east} {
			eventually(t, 10*time.Second, "mark ready", func() error {
				d, err := getDeployment(ctx, m, "serving", "llama")
				if err != nil {
					return err
				}
				d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = 3, 3, 3
				return m.Status().Update(ctx, d)
			})
		}
		eventually(t, 20*time.Second, "Ready", func() error {
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, key, got); err != nil {
				return err
			}
			if c := condition(got, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("Ready = %+v; clusters %+v", c, got.Status.Clusters)
			}
			if got.Status.ReadyReplicas != 6 || got.Status.ClustersReady != "2/2" || got.Status.ObservedGeneration != got.Generation {
				return fmt.Errorf("status %+v", got.Status)
			}
			for _, c := range got.Status.Clusters {
				if !c.Reachable || !c.Exported || c.DesiredReplicas != 3 || c.ReadyReplicas != 3 || c.LastSyncTime == nil || c.Region == "" {
					return fmt.Errorf("cluster status %+v", c)
				}
			}
			return nil
		})
	})

	t.Run("no-op reconcile writes nothing", func(t *testing.T) {
		got := &v1alpha1.FleetInferenceService{}
		// Converged first: both reconcilers have written what they have to say.
		eventually(t, 15*time.Second, "converged", func() error {
			if err := hub.Get(ctx, key, got); err != nil {
				return err
			}
			if condition(got, v1alpha1.ConditionRoutesProgrammed) == nil || condition(got, v1alpha1.ConditionPropagated).Status != metav1.ConditionTrue {
				return fmt.Errorf("conditions %+v", got.Status.Conditions)
			}
			return nil
		})
		time.Sleep(time.Second)
		before := resourceVersions(ctx, t, west)
		if err := hub.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		// An annotation change triggers a reconcile without changing the spec.
		if err := hub.Patch(ctx, got, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"poke":"1"}}}`))); err != nil {
			t.Fatal(err)
		}
		rv, statusBefore := got.ResourceVersion, got.Status.DeepCopy()
		time.Sleep(3 * time.Second)
		if err := hub.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != rv {
			t.Errorf("service written by a no-op reconcile: %s -> %s\n%s", rv, got.ResourceVersion, cmp.Diff(statusBefore, &got.Status))
		}
		after := resourceVersions(ctx, t, west)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s written by a no-op reconcile", k)
			}
		}
	})

	t.Run("drift is reverted", func(t *testing.T) {
		eventually(t, 10*time.Second, "edit", func() error {
			d, err := getDeployment(ctx, west, "serving", "llama")
			if err != nil {
				return err
			}
			d.Spec.Replicas = ptr.To[int32](9)
			d.Spec.Template.Spec.Containers[0].Image = "attacker/image"
			return west.Update(ctx, d)
		})
		if err := west.Delete(ctx, &infv1.InferencePool{ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: "serving"}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "reverted", func() error {
			d, err := getDeployment(ctx, west, "serving", "llama")
			if err != nil {
				return err
			}
			if *d.Spec.Replicas != 3 || d.Spec.Template.Spec.Containers[0].Image != v1alpha1.DefaultImage {
				return fmt.Errorf("replicas %d image %s", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
			}
			return west.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "llama"}, &infv1.InferencePool{})
		})
	})

	t.Run("spec change rolls out and prunes", func(t *testing.T) {
		framework.UpdateService(t, hub, key, func(got *v1alpha1.FleetInferenceService) {
			got.Spec.Replicas = 4
			got.Spec.Model.Server.Args = []string{"--max-model-len=4096"}
			got.Spec.Objectives = []v1alpha1.Objective{{Name: "base", Priority: ptr.To[int32](20)}}
		})
		for name, m := range map[string]client.Client{"west": west, "east": east} {
			eventually(t, 15*time.Second, name+" rolled out", func() error {
				d, err := getDeployment(ctx, m, "serving", "llama")
				if err != nil {
					return err
				}
				if *d.Spec.Replicas != 2 || !framework.HasServerArg(d.Spec.Template.Spec.Containers[0], "--max-model-len=4096") {
					return fmt.Errorf("replicas %d args %v", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Args)
				}
				if err := m.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "food-review"}, &infv1alpha2.InferenceObjective{}); !apierrors.IsNotFound(err) {
					return fmt.Errorf("removed objective still there: %v", err)
				}
				return m.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "base"}, &infv1alpha2.InferenceObjective{})
			})
		}
	})

	t.Run("kubectl scale sets the total through the scale subresource", func(t *testing.T) {
		scale := func(replicas int32) {
			t.Helper()
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, key, got); err != nil {
				t.Fatal(err)
			}
			body := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
			if err := hub.SubResource("scale").Update(ctx, got, client.WithSubResourceBody(body)); err != nil {
				t.Fatalf("scale to %d: %v", replicas, err)
			}
		}
		for _, total := range []int32{6, 4} {
			scale(total)
			for name, m := range map[string]client.Client{"west": west, "east": east} {
				eventually(t, 15*time.Second, fmt.Sprintf("%s at %d of %d", name, total/2, total), func() error {
					d, err := getDeployment(ctx, m, "serving", "llama")
					if err != nil {
						return err
					}
					if *d.Spec.Replicas != total/2 {
						return fmt.Errorf("replicas %d, want %d", *d.Spec.Replicas, total/2)
					}
					return nil
				})
			}
			eventually(t, 15*time.Second, "scale status", func() error {
				got := &v1alpha1.FleetInferenceService{}
				if err := hub.Get(ctx, key, got); err != nil {
					return err
				}
				sc := &autoscalingv1.Scale{}
				if err := hub.SubResource("scale").Get(ctx, got, sc); err != nil {
					return err
				}
				if sc.Spec.Replicas != total || sc.Status.Replicas != total || sc.Status.Selector != "app=llama" {
					return fmt.Errorf("scale %+v, want %d replicas and selector app=llama", sc, total)
				}
				return nil
			})
		}
	})

	t.Run("unselected cluster is cleaned up", func(t *testing.T) {
		framework.UpdateService(t, hub, key, func(got *v1alpha1.FleetInferenceService) {
			got.Spec.Placement.Clusters = []v1alpha1.ClusterPlacement{{Name: "west"}}
		})
		eventually(t, 15*time.Second, "east emptied", func() error {
			if n := ownedCount(ctx, t, east); n != 0 {
				return fmt.Errorf("%d owned objects left in east", n)
			}
			d, err := getDeployment(ctx, west, "serving", "llama")
			if err != nil {
				return err
			}
			if *d.Spec.Replicas != 4 {
				return fmt.Errorf("west replicas %d, want all 4", *d.Spec.Replicas)
			}
			// east's decision and its entry go; west's entry stays.
			got := &v1alpha1.FleetInferenceService{}
			if err := hub.Get(ctx, key, got); err != nil {
				return err
			}
			if _, ok := got.Status.Placement.Decision("east"); ok {
				return fmt.Errorf("east still placed: %+v", got.Status.Placement)
			}
			if _, ok := got.Status.Cluster("east"); ok {
				return fmt.Errorf("east entry still in status: %+v", got.Status.Clusters)
			}
			if w, ok := got.Status.Cluster("west"); !ok || w.DesiredReplicas != 4 {
				return fmt.Errorf("west entry %+v", w)
			}
			return nil
		})
		// east's namespace existed before the hub came: it stays.
		if err := east.Get(ctx, client.ObjectKey{Name: "serving"}, &corev1.Namespace{}); err != nil {
			t.Fatalf("pre-existing namespace removed: %v", err)
		}
	})

	t.Run("deletion removes everything", func(t *testing.T) {
		if err := hub.Delete(ctx, &v1alpha1.FleetInferenceService{ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: "serving"}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "service gone", func() error {
			err := hub.Get(ctx, key, &v1alpha1.FleetInferenceService{})
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there: %v", err)
			}
			for name, m := range map[string]client.Client{"west": west, "east": east} {
				if n := ownedCount(ctx, t, m); n != 0 {
					return fmt.Errorf("%d owned objects left in %s", n, name)
				}
			}
			// west's namespace was created by the hub: it goes with the service.
			ns := &corev1.Namespace{}
			if err := west.Get(ctx, client.ObjectKey{Name: "serving"}, ns); err == nil && ns.DeletionTimestamp.IsZero() {
				return fmt.Errorf("hub-created namespace still active in west")
			}
			return nil
		})
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ownedKinds are the kinds whose owned objects tests count.
var ownedKinds = []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ConfigMapList{}, &corev1.SecretList{}, &corev1.ServiceList{},
	&corev1.ServiceAccountList{}, &infv1.InferencePoolList{}, &infv1alpha2.InferenceObjectiveList{}}

func ownedCount(ctx context.Context, t *testing.T, c client.Client) int {
	t.Helper()
	n := 0
	for _, l := range ownedKinds {
		l := l.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, l, client.MatchingLabels{render.LabelManagedBy: render.ManagedBy, render.LabelService: "llama"}); err != nil {
			t.Fatal(err)
		}
		n += meta.LenList(l)
	}
	return n
}

func resourceVersions(ctx context.Context, t *testing.T, c client.Client) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range ownedKinds {
		l := l.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, l, client.MatchingLabels{render.LabelManagedBy: render.ManagedBy}); err != nil {
			t.Fatal(err)
		}
		_ = meta.EachListItem(l, func(o runtime.Object) error {
			m := o.(client.Object)
			out[fmt.Sprintf("%T %s", o, client.ObjectKeyFromObject(m))] = m.GetResourceVersion()
			return nil
		})
	}
	if len(out) < 8 {
		t.Fatalf("expected the rendered objects, found %d", len(out))
	}
	return out
}

// TestFailoverOnMemberLoss stops a member's API server and expects its share to move to the
// other member within unhealthyAfter plus a few probe intervals.
func TestFailoverOnMemberLoss(t *testing.T) {
	f := startFleetWith(t, app.HubOptions{ProbeInterval: 200 * time.Millisecond}, "west", "east")
	ctx := context.Background()
	hub := f.hub.Client
	svc := routeService("lossy", "west", "east")
	svc.Spec.Placement.Failover.UnhealthyAfter = &metav1.Duration{Duration: 2 * time.Second}
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"west", "east"} {
		markReady(ctx, t, f.members[m].Client, "lossy", 2)
	}
	status := func() map[string]v1alpha1.ClusterStatus {
		got := &v1alpha1.FleetInferenceService{}
		if err := hub.Get(ctx, client.ObjectKeyFromObject(svc), got); err != nil {
			t.Fatal(err)
		}
		out := map[string]v1alpha1.ClusterStatus{}
		for _, c := range got.Status.Clusters {
			out[c.Name] = c
		}
		return out
	}
	eventually(t, 15*time.Second, "spread", func() error {
		s := status()
		if s["west"].ReadyReplicas != 2 || s["east"].ReadyReplicas != 2 {
			return fmt.Errorf("%+v", s)
		}
		return nil
	})
	stopped := time.Now()
	if err := f.members["east"].StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "east failed over", func() error {
		s := status()
		if !s["east"].FailedOver || s["east"].Health != v1alpha1.Unreachable || s["west"].DesiredReplicas != 4 {
			return fmt.Errorf("%+v", s)
		}
		return nil
	})
	t.Logf("failed over %s after the stop", time.Since(stopped).Round(100*time.Millisecond))

	// A hub restarted mid-failover resumes from the recorded state: no second move, and no
	// failback while the member is still down.
	before := status()
	f.restartHub()
	time.Sleep(3 * time.Second)
	after := status()
	for _, n := range []string{"west", "east"} {
		if after[n].FailedOver != before[n].FailedOver || after[n].DesiredReplicas != before[n].DesiredReplicas ||
			!after[n].HealthSince.Equal(before[n].HealthSince) {
			t.Errorf("%s changed across a hub restart: %+v -> %+v", n, before[n], after[n])
		}
	}
	var evs eventsv1.EventList
	if err := hub.List(ctx, &evs, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	moves := 0
	for _, e := range evs.Items {
		if e.Reason == controllers.ReasonFailingOver && e.Regarding.Name == "lossy" {
			moves += int(max(1, e.DeprecatedCount))
			if e.Series != nil {
				moves += int(e.Series.Count) - 1
			}
		}
	}
	if moves != 1 {
		t.Errorf("want exactly one failover event, got %d", moves)
	}

	// Deleted while east is down: the deletion waits for east, and the status says so
	// instead of the Ready it had.
	if err := hub.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "Ready names what the deletion waits for", func() error {
		got := &v1alpha1.FleetInferenceService{}
		if err := hub.Get(ctx, client.ObjectKeyFromObject(svc), got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Status == metav1.ConditionTrue || c.Reason != controllers.ReasonDeleting ||
			!strings.Contains(c.Message, "east (unreachable") || strings.Contains(c.Message, "west") {
			return fmt.Errorf("Ready %+v", c)
		}
		if e, _ := got.Status.Cluster("east"); e.Reachable || e.Health != v1alpha1.Unreachable {
			return fmt.Errorf("east's entry while deleting %+v", e)
		}
		return nil
	})
}

// TestOrphanDeletionPolicy deletes a service whose deletionPolicy is Orphan: the service
// goes at once and its objects stay running in the member.
func TestOrphanDeletionPolicy(t *testing.T) {
	f := startFleet(t, "west")
	ctx := context.Background()
	hub, west := f.hub.Client, f.members["west"].Client
	svc := routeService("kept", "west")
	svc.Spec.DeletionPolicy = v1alpha1.DeletionOrphan
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "synced", func() error {
		_, err := getDeployment(ctx, west, "default", "kept")
		return err
	})
	if err := hub.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "service gone", func() error {
		if err := hub.Get(ctx, client.ObjectKeyFromObject(svc), &v1alpha1.FleetInferenceService{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
	time.Sleep(time.Second)
	if _, err := getDeployment(ctx, west, "default", "kept"); err != nil {
		t.Fatalf("orphaned Deployment deleted: %v", err)
	}
	if err := west.Get(ctx, client.ObjectKey{Namespace: "default", Name: "kept"}, &infv1.InferencePool{}); err != nil {
		t.Fatalf("orphaned InferencePool deleted: %v", err)
	}
}

// TestTokenSecretNeedsLabel: the hub copies a token Secret to members only once it carries
// v1alpha1.LabelCopyToMembers; before, each cluster says why and nothing is applied there.
func TestTokenSecretNeedsLabel(t *testing.T) {
	f := startFleet(t, "west")
	ctx := context.Background()
	hub, west := f.hub.Client, f.members["west"].Client
	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "serving"}}); err != nil {
		t.Fatal(err)
	}
	token := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-token", Namespace: "serving"}, Data: map[string][]byte{"token": []byte("hf_secret")}}
	if err := hub.Create(ctx, token); err != nil {
		t.Fatal(err)
	}
	svc := twoRegionService("west")
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)
	eventually(t, 15*time.Second, "west refuses the unlabelled Secret", func() error {
		got := &v1alpha1.FleetInferenceService{}
		if err := hub.Get(ctx, key, got); err != nil {
			return err
		}
		e, ok := got.Status.Cluster("west")
		if !ok || e.Reason != controllers.ReasonSyncFailed || !strings.Contains(e.Message, "serving/hf-token") || !strings.Contains(e.Message, v1alpha1.LabelCopyToMembers+"=true") {
			return fmt.Errorf("west %+v, want SyncFailed naming the Secret and the label", e)
		}
		return nil
	})
	if err := west.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "llama-hf-token"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Fatalf("token copied to west without the label: %v", err)
	}
	if _, err := getDeployment(ctx, west, "serving", "llama"); !apierrors.IsNotFound(err) {
		t.Fatalf("model Deployment applied half-way: %v", err)
	}

	token.Labels = sharedWithMembers
	if err := hub.Update(ctx, token); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the labelled Secret copied", func() error {
		s := &corev1.Secret{}
		if err := west.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "llama-hf-token"}, s); err != nil {
			return err
		}
		if string(s.Data["token"]) != "hf_secret" {
			return fmt.Errorf("copied token %q", s.Data["token"])
		}
		return nil
	})
}

// TestMemberWithoutCRD: a member that lacks the InferenceObjective or the InferencePool CRD
// gets a status entry naming the kind and what to install, and syncs once the CRD is back.
func TestMemberWithoutCRD(t *testing.T) {
	for _, tc := range []struct {
		kind, crd, served string
		// synced reads the object of that kind once west is in sync.
		synced func(context.Context, client.Client) error
	}{
		{"InferenceObjective", "inferenceobjectives.inference.networking.x-k8s.io", "InferenceObjective (inference.networking.x-k8s.io/v1alpha2)",
			func(ctx context.Context, c client.Client) error {
				return c.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "food-review"}, &infv1alpha2.InferenceObjective{})
			}},
		// Member sync watches InferencePools: the engaged member's watch fails meanwhile.
		{"InferencePool", "inferencepools.inference.networking.k8s.io", "InferencePool (inference.networking.k8s.io/v1)",
			func(ctx context.Context, c client.Client) error {
				return c.Get(ctx, client.ObjectKey{Namespace: "serving", Name: "llama"}, &infv1.InferencePool{})
			}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			f := startFleet(t, "west")
			ctx := context.Background()
			hub, west := f.hub.Client, f.members["west"]
			crd := &unstructured.Unstructured{}
			crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
			crdKey := client.ObjectKey{Name: tc.crd}
			if err := west.Client.Get(ctx, crdKey, crd); err != nil {
				t.Fatal(err)
			}
			if err := west.Client.Delete(ctx, crd); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "the CRD gone", func() error {
				if err := west.Client.Get(ctx, crdKey, crd.DeepCopy()); !apierrors.IsNotFound(err) {
					return fmt.Errorf("still there: %v", err)
				}
				return nil
			})
			createToken(ctx, t, hub)
			svc := twoRegionService("west")
			if err := hub.Create(ctx, svc); err != nil {
				t.Fatal(err)
			}
			key := client.ObjectKeyFromObject(svc)
			eventually(t, 30*time.Second, "west names the missing kind", func() error {
				got := &v1alpha1.FleetInferenceService{}
				if err := hub.Get(ctx, key, got); err != nil {
					return err
				}
				e, _ := got.Status.Cluster("west")
				if e.Reason != controllers.ReasonSyncFailed || !strings.Contains(e.Message, "does not serve "+tc.served) ||
					!strings.Contains(e.Message, "install its CRD") {
					return fmt.Errorf("west %+v, want SyncFailed naming %s and its CRD", e, tc.kind)
				}
				return nil
			})

			back := &unstructured.Unstructured{Object: map[string]any{"apiVersion": crd.GetAPIVersion(), "kind": crd.GetKind(),
				"metadata": map[string]any{"name": crd.GetName()}, "spec": crd.Object["spec"]}}
			back.SetAnnotations(crd.GetAnnotations()) // api-approved.kubernetes.io, for k8s.io groups
			if err := west.Client.Create(ctx, back); err != nil {
				t.Fatal(err)
			}
			eventually(t, 60*time.Second, "west synced once the CRD is back", func() error {
				got := &v1alpha1.FleetInferenceService{}
				if err := hub.Get(ctx, key, got); err != nil {
					return err
				}
				if e, _ := got.Status.Cluster("west"); e.Reason == controllers.ReasonSyncFailed {
					return fmt.Errorf("west %+v", e)
				}
				return tc.synced(ctx, west.Client)
			})
		})
	}
}
