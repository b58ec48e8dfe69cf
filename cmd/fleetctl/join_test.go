package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/localfleet"
)

// TestJoinOnLocalFleet: members joined with fleetctl by kubeconfig context serve a
// service; cordon moves a member's share away and uncordon back; unjoin --cleanup leaves
// nothing of the hub's in the member. Joins to an unreachable or unauthorized member fail
// with a clear error and write nothing.
func TestJoinOnLocalFleet(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	lf := framework.StartLocalFleet(t, localfleet.DefaultMembers(), framework.Unregistered)
	lf.RunHub(t, app.HubOptions{MemberTimeout: 5 * time.Second})
	ctx := context.Background()
	hub := lf.Hub.Client
	hubKC := lf.Hub.KubeconfigPath
	west, east := lf.Members["gke-west"], lf.Members["gke-east"]

	registrations := func() []string {
		var secrets corev1.SecretList
		if err := hub.List(ctx, &secrets, client.InNamespace(fleet.RegistrationNamespace)); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		var names []string
		for _, s := range secrets.Items {
			if fleet.IsRegistration(s.Labels) {
				names = append(names, s.Name)
			}
		}
		return names
	}
	hubIdentity := func(c client.Client) error {
		return c.Get(ctx, client.ObjectKey{Namespace: joinNamespace, Name: joinServiceAccount}, &corev1.ServiceAccount{})
	}

	// Unreachable: nothing answers at the member's address.
	dead := writeServerKubeconfig(t, "dead", "https://127.0.0.1:1")
	out, err := fleetctl(ctx, "cluster", "join", "gke-west", "--cluster-kubeconfig", dead, "--kubeconfig", hubKC)
	if err == nil || !strings.Contains(err.Error(), `member gke-west (context "" in `+dead+" (server https://127.0.0.1:1))") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("join of an unreachable member: %v\n%s", err, out)
	}
	// Unauthorized: the member's API server refuses the credentials.
	bogus := writeServerKubeconfig(t, "bogus", west.Local.RESTConfig().Host)
	out, err = fleetctl(ctx, "cluster", "join", "gke-west", "--cluster-kubeconfig", bogus, "--kubeconfig", hubKC)
	if err == nil || !strings.Contains(err.Error(), "the cluster refused the credentials (401 Unauthorized)") || !strings.Contains(err.Error(), bogus) {
		t.Errorf("join with refused credentials: %v\n%s", err, out)
	}
	if regs := registrations(); len(regs) != 0 {
		t.Errorf("failed joins registered %v", regs)
	}
	if err := hubIdentity(west.Client); !apierrors.IsNotFound(err) {
		t.Errorf("failed joins left the hub's identity in gke-west: %v", err)
	}

	// Both members joined by context.
	for _, m := range []*framework.ClusterProxy{west, east} {
		out, err := fleetctl(ctx, "cluster", "join", m.Name, "--cluster-kubeconfig", m.KubeconfigPath, "--cluster-context", m.Name,
			"--region", m.Region, "--labels", "tier=gpu", "--kubeconfig", hubKC, "--wait", "60s")
		if err != nil || !strings.Contains(out, "cluster "+m.Name+" joined: the hub reaches it") {
			t.Fatalf("join %s: %v\n%s", m.Name, err, out)
		}
		crb := &rbacv1.ClusterRoleBinding{}
		if err := m.Client.Get(ctx, client.ObjectKey{Name: joinBinding}, crb); err != nil || crb.RoleRef.Name != "inferfleet-member" ||
			len(crb.Subjects) != 1 || crb.Subjects[0].Name != joinServiceAccount {
			t.Errorf("%s: binding %v %+v", m.Name, err, crb)
		}
	}
	if out, err := fleetctl(ctx, "clusters", "--kubeconfig", hubKC); err != nil || !strings.Contains(out, "gke-east  fleetctl  us-east4") {
		t.Errorf("clusters after join: %v\n%s", err, out)
	}

	// A service served on both.
	svc := sampleService(t)
	// Back from a cordon after 5s of health (the default waits 2m).
	svc.Spec.Placement.Failover.FailbackAfter = &metav1.Duration{Duration: 5 * time.Second}
	if err := hub.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-token", Namespace: "default", Labels: map[string]string{v1alpha1.LabelCopyToMembers: "true"}},
		Data: map[string][]byte{"token": []byte("hf_e2e")}}); err != nil {
		t.Fatal(err)
	}
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)
	replicas := func(want map[string]int32) {
		t.Helper()
		framework.Eventually(t, 60*time.Second, fmt.Sprintf("replicas %v", want), func() error {
			for name, n := range want {
				d := &appsv1.Deployment{}
				if err := lf.Members[name].Client.Get(ctx, key, d); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if *d.Spec.Replicas != n {
					return fmt.Errorf("%s: %d replicas", name, *d.Spec.Replicas)
				}
			}
			return nil
		})
	}
	replicas(map[string]int32{"gke-west": 3, "gke-east": 3})

	// Cordon moves gke-west's share to gke-east; uncordon brings it back.
	if out, err := fleetctl(ctx, "cluster", "cordon", "gke-west", "--reason", "maintenance by e2e", "--kubeconfig", hubKC); err != nil {
		t.Fatalf("cordon: %v\n%s", err, out)
	}
	replicas(map[string]int32{"gke-west": 0, "gke-east": 6})
	got := &v1alpha1.FleetInferenceService{}
	if err := hub.Get(ctx, key, got); err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Status.Placement.Decision("gke-west"); d.Reason != v1alpha1.PlacementCordoned {
		t.Errorf("gke-west's placement while cordoned: %+v", d)
	}
	if out, err := fleetctl(ctx, "clusters", "gke-west", "-o", "jsonpath={.status.properties[0].value}", "--kubeconfig", hubKC); err != nil || out != "maintenance by e2e" {
		t.Errorf("clusters shows the cordon: %v %q", err, out)
	}
	if out, err := fleetctl(ctx, "cluster", "uncordon", "gke-west", "--kubeconfig", hubKC); err != nil {
		t.Fatalf("uncordon: %v\n%s", err, out)
	}
	replicas(map[string]int32{"gke-west": 3, "gke-east": 3})

	// Unjoin with cleanup: gke-east carries the service, nothing of ours is left in gke-west.
	out, err = fleetctl(ctx, "cluster", "unjoin", "gke-west", "--cleanup", "--cluster-kubeconfig", west.KubeconfigPath, "--kubeconfig", hubKC)
	if err != nil {
		t.Fatalf("unjoin: %v\n%s", err, out)
	}
	replicas(map[string]int32{"gke-east": 6})
	sel := client.MatchingLabels{render.LabelManagedBy: render.ManagedBy}
	for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ConfigMapList{}, &corev1.SecretList{}, &corev1.ServiceList{}, &corev1.ServiceAccountList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{}} {
		if err := west.Client.List(ctx, list, sel); err != nil {
			t.Fatal(err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(items); n != 0 {
			t.Errorf("unjoin --cleanup left %d %T of the hub's in gke-west", n, list)
		}
	}
	if err := hubIdentity(west.Client); !apierrors.IsNotFound(err) {
		t.Errorf("unjoin --cleanup left the hub's identity: %v", err)
	}
	if err := west.Client.Get(ctx, client.ObjectKey{Name: joinBinding}, &rbacv1.ClusterRoleBinding{}); !apierrors.IsNotFound(err) {
		t.Errorf("unjoin --cleanup left the binding: %v", err)
	}
	if regs := registrations(); len(regs) != 1 || regs[0] != "gke-east" {
		t.Errorf("registrations after unjoin: %v", regs)
	}
}
