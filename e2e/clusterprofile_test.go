package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/fleet/clusterprofile"
	"github.com/inferfleet/inferfleet/internal/localfleet"
	"github.com/inferfleet/inferfleet/internal/repo"
)

// TestClusterProfileSourceOnLocalFleet: ClusterProfiles on the hub, with credential
// Secrets as multicluster-runtime's cluster-inventory-api provider reads them, make the
// local fleet's clusters members that serve a service; a profile's ControlPlaneHealthy=False
// fails the member over, True brings it back; a deleted profile disengages its member and
// moves its share.
func TestClusterProfileSourceOnLocalFleet(t *testing.T) {
	lf := framework.StartLocalFleet(t, localfleet.DefaultMembers(), framework.Unregistered)
	ctx := context.Background()
	hub := lf.Hub.Client
	if _, err := envtest.InstallCRDs(lf.Fleet.Hub.RESTConfig(), envtest.CRDInstallOptions{Paths: []string{repo.ClusterInventoryCRDDir(framework.Root())}}); err != nil {
		t.Fatal(err)
	}
	const ns = "fleet-system"
	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	lf.RunHub(t, app.HubOptions{MemberTimeout: 5 * time.Second, DiscoveryInterval: 500 * time.Millisecond,
		Sources: []string{app.SourceKubeconfig, app.SourceClusterProfile}, ClusterProfile: clusterprofile.Options{Namespace: ns}})

	setHealthy := func(name string, status metav1.ConditionStatus) {
		t.Helper()
		framework.Eventually(t, 10*time.Second, "profile status", func() error {
			p := &cpv1alpha1.ClusterProfile{}
			if err := hub.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
				return err
			}
			meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: cpv1alpha1.ClusterConditionControlPlaneHealthy,
				Status: status, Reason: "Probed", Message: "the cluster manager's own probe"})
			return hub.Status().Update(ctx, p)
		})
	}
	for _, name := range []string{"gke-west", "gke-east"} {
		m := lf.Members[name]
		p := &cpv1alpha1.ClusterProfile{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{fleet.RegionLabel: m.Region, "tier": "gpu",
				cpv1alpha1.LabelClusterManagerKey: "e2e"}},
			Spec: cpv1alpha1.ClusterProfileSpec{DisplayName: name, ClusterManager: cpv1alpha1.ClusterManager{Name: "e2e"}},
		}
		if err := hub.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		setHealthy(name, metav1.ConditionTrue)
		if err := hub.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-inferfleet", Namespace: ns,
			Labels: map[string]string{clusterprofile.LabelConsumer: clusterprofile.DefaultConsumerName, clusterprofile.LabelProfile: name}},
			Data: map[string][]byte{clusterprofile.KubeconfigKey: m.Local.Kubeconfig()}}); err != nil {
			t.Fatal(err)
		}
	}

	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	svc.Spec.Placement.Failover.UnhealthyAfter = &metav1.Duration{Duration: 2 * time.Second}
	svc.Spec.Placement.Failover.FailbackAfter = &metav1.Duration{Duration: 2 * time.Second}
	createToken(ctx, t, hub)
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)
	replicas := func(what string, want map[string]int32) {
		t.Helper()
		framework.Eventually(t, 60*time.Second, what, func() error {
			for name, n := range want {
				d, err := modelDeployment(ctx, lf.Members[name].Client, key)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if got := ptr.Deref(d.Spec.Replicas, -1); got != n {
					got := getService(ctx, t, hub, key)
					return fmt.Errorf("%s: %d replicas, want %d (placement %+v, clusters %+v)", name, ptr.Deref(d.Spec.Replicas, -1), n, got.Status.Placement, got.Status.Clusters)
				}
			}
			return nil
		})
	}
	replicas("served from both profiles' clusters", map[string]int32{"gke-west": 3, "gke-east": 3})
	for _, name := range []string{"gke-west", "gke-east"} {
		s, err := registration(ctx, hub, name)
		if err != nil || s.Labels[fleet.SourceLabel] != clusterprofile.SourceName || s.Labels["tier"] != "gpu" {
			t.Errorf("%s's registration: %v %v", name, err, s.Labels)
		}
	}

	// The profile's health counts beside the hub's probe: the API server still answers.
	setHealthy("gke-west", metav1.ConditionFalse)
	framework.Eventually(t, 10*time.Second, "gke-west's registration carries its profile's word", func() error {
		s, err := registration(ctx, hub, "gke-west")
		if err != nil {
			return err
		}
		if !strings.Contains(s.Annotations[fleet.AnnotationSourceUnhealthy], "ControlPlaneHealthy=False") {
			return fmt.Errorf("annotations %v", s.Annotations)
		}
		return nil
	})
	framework.Eventually(t, 10*time.Second, "the monitor counts gke-west unreachable", func() error {
		s, err := registration(ctx, hub, "gke-west")
		if err != nil {
			return err
		}
		if s.Annotations[fleet.AnnotationReachable] != "false" {
			return fmt.Errorf("annotations %v", s.Annotations)
		}
		return nil
	})
	// gke-west is failed over (the hub writes nothing to a member it counts unreachable,
	// so its Deployment stays as it was): gke-east carries all six.
	replicas("gke-east covers for gke-west while its profile says ControlPlaneHealthy=False", map[string]int32{"gke-east": 6})
	got := getService(ctx, t, hub, key)
	if d, _ := got.Status.Placement.Decision("gke-west"); d.Replicas != 0 || d.Reason != v1alpha1.PlacementFailedOver {
		t.Errorf("gke-west's placement while its profile is unhealthy: %+v", d)
	}
	if st := clusterStatus(got, "gke-west"); st.Reachable || !strings.Contains(st.HealthReason, "ControlPlaneHealthy=False (Probed): the cluster manager's own probe") {
		t.Errorf("gke-west's status while its profile is unhealthy: %+v", st)
	}
	setHealthy("gke-west", metav1.ConditionTrue)
	replicas("gke-west back once its profile is healthy", map[string]int32{"gke-west": 3, "gke-east": 3})

	// A deleted profile: its member leaves, its share moves.
	if err := hub.Delete(ctx, &cpv1alpha1.ClusterProfile{ObjectMeta: metav1.ObjectMeta{Name: "gke-east", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	replicas("gke-east's share moved to gke-west", map[string]int32{"gke-west": 6})
	framework.Eventually(t, 30*time.Second, "gke-east unregistered", func() error {
		if _, err := registration(ctx, hub, "gke-east"); err == nil {
			return fmt.Errorf("still registered")
		}
		got := getService(ctx, t, hub, key)
		if d, _ := got.Status.Placement.Decision("gke-east"); d.Reason != v1alpha1.PlacementNotRegistered {
			return fmt.Errorf("gke-east's placement %+v", d)
		}
		return nil
	})
}
