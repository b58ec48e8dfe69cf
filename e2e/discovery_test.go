package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/gkehub/apiv1beta1/gkehubpb"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1alpha2 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/fleet/gkehub"
	"github.com/inferfleet/inferfleet/fleet/gkehub/gkehubtest"
	"github.com/inferfleet/inferfleet/fleet/kind"
	"github.com/inferfleet/inferfleet/internal/localfleet"
)

// kindClusters stands in for kind: its clusters are local fleet members.
type kindClusters struct {
	mu       sync.Mutex
	clusters map[string][]byte
}

func (k *kindClusters) List() ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var names []string
	for n := range k.clusters {
		names = append(names, n)
	}
	return names, nil
}

func (k *kindClusters) KubeConfig(name string, _ bool) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kc, ok := k.clusters[name]
	if !ok {
		return "", errors.New("no kind cluster " + name)
	}
	return string(kc), nil
}

func (k *kindClusters) remove(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.clusters, name)
}

func registration(ctx context.Context, hub client.Client, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	return s, hub.Get(ctx, client.ObjectKey{Namespace: fleet.RegistrationNamespace, Name: name}, s)
}

// TestDiscoverySourcesOnLocalFleet runs the hub with the GKE Hub and kind sources combined:
// nobody registers the members; a fake GKE Hub (the real client over gRPC) lists gke-west
// and a stand-in for kind lists gke-east. The same service as in the member-sync suite
// becomes Ready in both, and a cluster that leaves its source leaves the placement.
func TestDiscoverySourcesOnLocalFleet(t *testing.T) {
	lf := framework.StartLocalFleet(t, localfleet.DefaultMembers(), framework.Unregistered)
	ctx := context.Background()
	hub := lf.Hub.Client

	gke, clientOpts := gkehubtest.Start(t)
	ready := gkehubpb.MembershipState_READY
	// A zonal GKE cluster: its region is the zone's.
	gke.Set(gkehubtest.Membership("global", "gke-west", "europe-west3-a", ready, map[string]string{"tier": "gpu"}))
	var hostsMu sync.Mutex
	hosts := map[string]string{}
	kindFake := &kindClusters{clusters: map[string][]byte{"gke-east": lf.Members["gke-east"].Local.Kubeconfig()}}

	lf.RunHub(t, app.HubOptions{
		MemberTimeout:     5 * time.Second,
		Sources:           []string{app.SourceKubeconfig, app.SourceGKEHub, app.SourceKind},
		DiscoveryInterval: 500 * time.Millisecond,
		GKE: gkehub.Options{
			Project: "p", ProjectNumber: "123", PollInterval: 500 * time.Millisecond, ClientOptions: clientOpts,
			// The Connect Gateway is out of reach here: each membership is served by the
			// local member of its name, and the gateway URL it would use is recorded.
			RESTConfigFor: func(m gkehub.Member) (*rest.Config, error) {
				hostsMu.Lock()
				hosts[m.Name] = m.ConnectGatewayHost
				hostsMu.Unlock()
				c := lf.Members[m.Name]
				if c == nil {
					return nil, fmt.Errorf("no local member %s", m.Name)
				}
				return c.Local.RESTConfig(), nil
			},
		},
		// The kind clusters' nodes carry the region label (kwok nodes in the local fleet).
		Kind: kind.Options{Prefix: "gke-", Lister: kindFake},
	})

	t.Run("sources register their clusters", func(t *testing.T) {
		framework.Eventually(t, 30*time.Second, "registrations", func() error {
			west, err := registration(ctx, hub, "gke-west")
			if err != nil {
				return err
			}
			east, err := registration(ctx, hub, "gke-east")
			if err != nil {
				return err
			}
			if west.Labels[fleet.SourceLabel] != "gkehub" || west.Labels[fleet.RegionLabel] != "europe-west3" || west.Labels["tier"] != "gpu" || len(west.Data) != 0 {
				return fmt.Errorf("gke-west registration %v, %d data keys", west.Labels, len(west.Data))
			}
			if east.Labels[fleet.SourceLabel] != "kind" || east.Labels[fleet.RegionLabel] != "us-east4" || east.Labels[fleet.KubeconfigLabel] != "true" {
				return fmt.Errorf("gke-east registration %v", east.Labels)
			}
			return nil
		})
		hostsMu.Lock()
		defer hostsMu.Unlock()
		if want := "https://connectgateway.googleapis.com/v1/projects/123/locations/global/gkeMemberships/gke-west"; hosts["gke-west"] != want {
			t.Errorf("Connect Gateway host %q, want %q", hosts["gke-west"], want)
		}
	})

	svc := createTwoRegionSample(ctx, t, hub)
	key := client.ObjectKeyFromObject(svc)

	t.Run("the service is Ready on both discovered clusters", func(t *testing.T) {
		framework.Eventually(t, 45*time.Second, "Ready", func() error {
			got := getService(ctx, t, hub, key)
			if err := serviceReady(got); err != nil {
				return err
			}
			for name, region := range map[string]string{"gke-west": "europe-west3", "gke-east": "us-east4"} {
				st := clusterStatus(got, name)
				if !st.Reachable || st.ReadyReplicas != 3 || st.Region != region {
					return fmt.Errorf("%s status %+v", name, st)
				}
			}
			return nil
		})
		for name, m := range lf.Members {
			if d, err := modelDeployment(ctx, m.Client, key); err != nil || d.Status.ReadyReplicas != 3 {
				t.Errorf("%s model deployment: %v", name, err)
			}
		}
	})

	t.Run("the health monitor reports on discovered clusters", func(t *testing.T) {
		framework.Eventually(t, 15*time.Second, "reachability annotations", func() error {
			for _, name := range []string{"gke-west", "gke-east"} {
				s, err := registration(ctx, hub, name)
				if err != nil {
					return err
				}
				if s.Annotations[fleet.AnnotationReachable] != "true" {
					return fmt.Errorf("%s annotations %v", name, s.Annotations)
				}
			}
			return nil
		})
	})

	t.Run("a membership removed from the fleet leaves the placement", func(t *testing.T) {
		gke.Set()
		framework.Eventually(t, 30*time.Second, "gke-west unregistered and its share on gke-east", func() error {
			if _, err := registration(ctx, hub, "gke-west"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("gke-west registration still there (%v)", err)
			}
			d, err := modelDeployment(ctx, lf.Members["gke-east"].Client, key)
			if err != nil {
				return err
			}
			if ptr.Deref(d.Spec.Replicas, 0) != 6 {
				return fmt.Errorf("gke-east replicas %d, want all 6", ptr.Deref(d.Spec.Replicas, 0))
			}
			return nil
		})
	})

	t.Run("a deleted kind cluster is unregistered", func(t *testing.T) {
		kindFake.remove("gke-east")
		framework.Eventually(t, 30*time.Second, "gke-east unregistered", func() error {
			if _, err := registration(ctx, hub, "gke-east"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("gke-east registration still there (%v)", err)
			}
			return nil
		})
	})
}

// TestKubeconfigRotationOnLocalFleet replaces a member's registered kubeconfig with a new
// credential (another client certificate, for a user that has only the member role from
// config/rbac/member-role.yaml) while a service runs there: the hub reconnects and keeps
// reconciling that member.
func TestKubeconfigRotationOnLocalFleet(t *testing.T) {
	lf := framework.StartLocalFleet(t, localfleet.DefaultMembers())
	lf.RunHub(t, app.HubOptions{MemberTimeout: 5 * time.Second})
	ctx := context.Background()
	hub := lf.Hub.Client
	west := lf.Members["gke-west"]

	svc := createTwoRegionSample(ctx, t, hub)
	key := client.ObjectKeyFromObject(svc)
	waitReplicas := func(what string, want int32) {
		t.Helper()
		framework.Eventually(t, 30*time.Second, what, func() error {
			d, err := modelDeployment(ctx, west.Client, key)
			if err != nil {
				return err
			}
			if ptr.Deref(d.Spec.Replicas, 0) != want || d.Status.ReadyReplicas != want {
				return fmt.Errorf("gke-west replicas %d, ready %d, want %d", ptr.Deref(d.Spec.Replicas, 0), d.Status.ReadyReplicas, want)
			}
			return nil
		})
	}
	waitReplicas("ready before the rotation", 3)

	// The new identity gets exactly the member role.
	role := loadMemberRole(t)
	if err := west.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	const user = "inferfleet-hub-rotated"
	if err := west.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}); err != nil {
		t.Fatal(err)
	}
	kc, err := west.Local.IssueKubeconfig(user, nil)
	if err != nil {
		t.Fatal(err)
	}
	rotate := func(t *testing.T, kc []byte) {
		t.Helper()
		framework.Eventually(t, 10*time.Second, "rotate the registration", func() error {
			s, err := registration(ctx, hub, "gke-west")
			if err != nil {
				return err
			}
			s.Data[fleet.KubeconfigKey] = kc
			return hub.Update(ctx, s)
		})
	}
	rotate(t, kc)

	t.Run("a spec change reaches the member through the new credential", func(t *testing.T) {
		framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Replicas = 8
		})
		waitReplicas("8 replicas split 4/4", 4)
	})

	t.Run("drift is still reverted", func(t *testing.T) {
		framework.Eventually(t, 10*time.Second, "edit", func() error {
			d, err := modelDeployment(ctx, west.Client, key)
			if err != nil {
				return err
			}
			d.Spec.Replicas = ptr.To[int32](1)
			return west.Client.Update(ctx, d)
		})
		waitReplicas("replicas back to 4", 4)
		framework.Eventually(t, 15*time.Second, "gke-west healthy in the service status", func() error {
			got := getService(ctx, t, hub, key)
			if st := clusterStatus(got, "gke-west"); !st.Reachable || st.Health != v1alpha1.Healthy || st.ReadyReplicas != 4 {
				return fmt.Errorf("gke-west status after the rotation %+v", st)
			}
			return nil
		})
	})

	t.Run("a broken credential: the member's status says what is wrong, the other member carries on", func(t *testing.T) {
		now := time.Now()
		expired, err := west.Local.IssueKubeconfigValid(user, nil, now.Add(-48*time.Hour), now.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		good, err := clientcmd.Load(kc)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range good.AuthInfos {
			a.ClientCertificateData, a.ClientKeyData, a.Token = nil, nil, "revoked-token"
		}
		revoked, err := clientcmd.Write(*good)
		if err != nil {
			t.Fatal(err)
		}
		// Credentials that would make the hub run a command, or read a file of its own.
		marker := filepath.Join(t.TempDir(), "the-hub-ran-it")
		for _, a := range good.AuthInfos {
			a.Token = ""
			a.Exec = &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1", Command: "sh", InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
				Args: []string{"-c", "touch " + marker + `; echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"x"}}'`}}
		}
		execs, err := clientcmd.Write(*good)
		if err != nil {
			t.Fatal(err)
		}
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte("the-hubs-own-token"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, a := range good.AuthInfos {
			a.Exec, a.TokenFile = nil, tokenFile
		}
		readsFile, err := clientcmd.Write(*good)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, want string
			kubeconfig []byte
		}{
			{"expired", `client certificate of "` + user + `" expired at`, expired},
			{"refused", "refuses its credentials (401 Unauthorized)", revoked},
			{"not a kubeconfig", "invalid kubeconfig", []byte("apiVersion: v1\nkind: Config\nclusters: {not: a list}\n")},
			{"an exec plugin", "kubeconfig refused: it uses an exec plugin (sh)", execs},
			{"a token file", "kubeconfig refused: it uses tokenFile " + tokenFile, readsFile},
		} {
			rotate(t, tc.kubeconfig)
			framework.Eventually(t, 45*time.Second, "gke-west's entry says the credential is "+tc.name, func() error {
				st := clusterStatus(getService(ctx, t, hub, key), "gke-west")
				if st.Reachable || !strings.Contains(st.Message, tc.want) {
					return fmt.Errorf("gke-west: reachable %v, message %q, want %q", st.Reachable, st.Message, tc.want)
				}
				return nil
			})
			// The hub still serves the other member: a change reaches it.
			objective := "after-" + strings.ReplaceAll(tc.name, " ", "-")
			framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
				s.Spec.Objectives = append(s.Spec.Objectives, v1alpha1.Objective{Name: objective})
			})
			framework.Eventually(t, 30*time.Second, "the new objective in gke-east", func() error {
				return lf.Members["gke-east"].Client.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: objective}, &infv1alpha2.InferenceObjective{})
			})
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Errorf("the hub ran the registration's exec plugin: %v", err)
		}
		// Nothing was deleted in gke-west meanwhile, and the working credential brings it back.
		if _, err := modelDeployment(ctx, west.Client, key); err != nil {
			t.Fatalf("gke-west's model Deployment while its credential was broken: %v", err)
		}
		rotate(t, kc)
		framework.Eventually(t, time.Minute, "gke-west back", func() error {
			if st := clusterStatus(getService(ctx, t, hub, key), "gke-west"); !st.Reachable {
				return fmt.Errorf("gke-west status %+v", st)
			}
			return nil
		})
	})
}

// loadMemberRole reads the member ClusterRole shipped in config/rbac.
func loadMemberRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(framework.Root(), "config", "rbac", "member-role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(raw, r); err != nil {
		t.Fatal(err)
	}
	return r
}
