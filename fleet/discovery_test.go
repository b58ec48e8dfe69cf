package fleet_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// fakeSource returns what it is told, or an error.
type fakeSource struct {
	name string
	mu   sync.Mutex
	regs []fleet.Registration
	err  error
}

func (f *fakeSource) Name() string { return f.name }

func (f *fakeSource) Discover(context.Context) ([]fleet.Registration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fleet.Registration(nil), f.regs...), f.err
}

func (f *fakeSource) set(err error, regs ...fleet.Registration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regs, f.err = regs, err
}

func getSecret(t *testing.T, c client.Client, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: fleet.RegistrationNamespace, Name: name}, s); err != nil {
		t.Fatalf("registration %s: %v", name, err)
	}
	return s
}

func gone(t *testing.T, c client.Client, name string) bool {
	t.Helper()
	err := c.Get(context.Background(), client.ObjectKey{Namespace: fleet.RegistrationNamespace, Name: name}, &corev1.Secret{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return apierrors.IsNotFound(err)
}

// TestDiscoveryRegistersClusters runs discovery rounds against a real API server: what
// sources find becomes registration Secrets that the Registry lists, and nothing else is
// touched.
func TestDiscoveryRegistersClusters(t *testing.T) {
	env := testenv.Start(t, nil)
	ctx := context.Background()
	c := env.Client
	// A cluster someone registered by hand, and one whose name a source will also claim.
	if err := testenv.RegisterMember(ctx, c, "manual", "us-east4", map[string]string{"tier": "gpu"}, []byte("kc-manual")); err != nil {
		t.Fatal(err)
	}
	if err := testenv.RegisterMember(ctx, c, "taken", "us-east4", nil, []byte("kc-taken")); err != nil {
		t.Fatal(err)
	}
	unrelated := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: fleet.RegistrationNamespace}, Data: map[string][]byte{"x": []byte("y")}}
	if err := c.Create(ctx, unrelated); err != nil {
		t.Fatal(err)
	}

	kindSrc := &fakeSource{name: "kind"}
	gke := &fakeSource{name: "gkehub"}
	// Discovery's client counts its writes.
	var writes atomic.Int32
	cw, err := client.NewWithWatch(env.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	counting := interceptor.NewClient(cw, interceptor.Funcs{
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			writes.Add(1)
			return c.Apply(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			writes.Add(1)
			return c.Delete(ctx, obj, opts...)
		},
	})
	d := &fleet.Discovery{Client: counting, Namespace: fleet.RegistrationNamespace, Sources: []fleet.Source{kindSrc, gke}}

	kindSrc.set(nil,
		fleet.Registration{Cluster: fleet.Cluster{Name: "inferfleet-west", Region: "europe-west3"}, Kubeconfig: []byte("kc-west")},
		fleet.Registration{Cluster: fleet.Cluster{Name: "taken", Region: "us-central1"}, Kubeconfig: []byte("kc-other")})
	gke.set(nil, fleet.Registration{Cluster: fleet.Cluster{Name: "gke-east", Region: "us-east4",
		Labels: map[string]string{"env": "prod", fleet.KubeconfigLabel: "true", fleet.SourceLabel: "forged"}}})
	d.Round(ctx)

	west := getSecret(t, c, "inferfleet-west")
	if want := map[string]string{fleet.SourceLabel: "kind", fleet.KubeconfigLabel: "true", fleet.RegionLabel: "europe-west3"}; !maps.Equal(west.Labels, want) {
		t.Errorf("kind registration labels %v, want %v", west.Labels, want)
	}
	if string(west.Data[fleet.KubeconfigKey]) != "kc-west" {
		t.Errorf("kind registration kubeconfig %q", west.Data[fleet.KubeconfigKey])
	}
	east := getSecret(t, c, "gke-east")
	// A source's labels never make a cluster look like a kubeconfig registration or
	// another source's.
	if want := map[string]string{fleet.SourceLabel: "gkehub", fleet.RegionLabel: "us-east4", "env": "prod"}; !maps.Equal(east.Labels, want) {
		t.Errorf("gkehub registration labels %v, want %v", east.Labels, want)
	}
	if len(east.Data) != 0 {
		t.Errorf("gkehub registration holds data %v; it has no kubeconfig", east.Data)
	}
	taken := getSecret(t, c, "taken")
	if string(taken.Data[fleet.KubeconfigKey]) != "kc-taken" || taken.Labels[fleet.SourceLabel] != "" {
		t.Errorf("a kubeconfig registration was overwritten by a source: %v %q", taken.Labels, taken.Data[fleet.KubeconfigKey])
	}
	if d.Synced("kind") {
		t.Error("kind synced although one of its clusters clashes with a kubeconfig registration")
	}
	if !d.Synced("gkehub") {
		t.Error("gkehub not synced")
	}

	reg := &fleet.Registry{Reader: c, Namespace: fleet.RegistrationNamespace}
	all, err := reg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, cl := range all {
		names = append(names, cl.Name+"@"+cl.Region)
	}
	if want := []string{"gke-east@us-east4", "inferfleet-west@europe-west3", "manual@us-east4", "taken@us-east4"}; !slices.Equal(names, want) {
		t.Errorf("registry lists %v, want %v", names, want)
	}
	if !reg.Registers(east) || reg.Registers(unrelated) {
		t.Error("Registers: a source's record must count as a registration and a plain Secret must not")
	}

	t.Run("an unchanged round writes nothing", func(t *testing.T) {
		before := getSecret(t, c, "inferfleet-west").ResourceVersion
		beforeEast := getSecret(t, c, "gke-east").ResourceVersion
		n := writes.Load()
		d.Round(ctx)
		if w := writes.Load() - n; w != 0 {
			t.Errorf("an unchanged round issued %d writes", w)
		}
		if rv := getSecret(t, c, "inferfleet-west").ResourceVersion; rv != before {
			t.Errorf("kind registration rewritten: resourceVersion %s -> %s", before, rv)
		}
		if rv := getSecret(t, c, "gke-east").ResourceVersion; rv != beforeEast {
			t.Errorf("gkehub registration rewritten: resourceVersion %s -> %s", beforeEast, rv)
		}
	})

	t.Run("labels others add cause no writes", func(t *testing.T) {
		s := getSecret(t, c, "gke-east")
		s.Labels["team"] = "ml"
		if err := c.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
		before := getSecret(t, c, "gke-east").ResourceVersion
		n := writes.Load()
		d.Round(ctx)
		d.Round(ctx)
		if w := writes.Load() - n; w != 0 {
			t.Errorf("a label someone else added made discovery issue %d writes", w)
		}
		if after := getSecret(t, c, "gke-east"); after.ResourceVersion != before || after.Labels["team"] != "ml" {
			t.Errorf("a label someone else added made discovery write (resourceVersion %s -> %s) or was lost: %v", before, after.ResourceVersion, after.Labels)
		}
	})

	t.Run("changes keep others' annotations, a rotated kubeconfig is written", func(t *testing.T) {
		s := getSecret(t, c, "inferfleet-west")
		s.Annotations = map[string]string{fleet.AnnotationCordoned: "", fleet.AnnotationReachable: "true"}
		if err := c.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
		kindSrc.set(nil, fleet.Registration{Cluster: fleet.Cluster{Name: "inferfleet-west", Region: "europe-west4"}, Kubeconfig: []byte("kc-west-2")})
		d.Round(ctx)
		s = getSecret(t, c, "inferfleet-west")
		if s.Labels[fleet.RegionLabel] != "europe-west4" || string(s.Data[fleet.KubeconfigKey]) != "kc-west-2" {
			t.Errorf("update not written: %v %q", s.Labels, s.Data[fleet.KubeconfigKey])
		}
		if _, ok := s.Annotations[fleet.AnnotationCordoned]; !ok || s.Annotations[fleet.AnnotationReachable] != "true" {
			t.Errorf("annotations lost: %v", s.Annotations)
		}
		if !fleet.ClusterFromSecret(s).Cordoned {
			t.Error("cordon on a discovered cluster not read")
		}
		if !d.Synced("kind") {
			t.Error("kind not synced once the clash is gone")
		}
	})

	t.Run("a failing source keeps its registrations", func(t *testing.T) {
		kindSrc.set(errors.New("docker down"))
		gke.set(fleet.ErrNotSynced)
		d.Round(ctx)
		if gone(t, c, "inferfleet-west") || gone(t, c, "gke-east") {
			t.Error("a registration was removed while its source could not list")
		}
		if d.Synced("kind") || d.Synced("gkehub") {
			t.Error("a failing source reported synced")
		}
	})

	t.Run("a cluster the source no longer has is unregistered; others stay", func(t *testing.T) {
		kindSrc.set(nil)
		gke.set(nil, fleet.Registration{Cluster: fleet.Cluster{Name: "gke-east", Region: "us-east4"}})
		d.Round(ctx)
		if !gone(t, c, "inferfleet-west") {
			t.Error("kind registration of a deleted cluster kept")
		}
		for _, n := range []string{"gke-east", "manual", "taken", "unrelated"} {
			if gone(t, c, n) {
				t.Errorf("%s removed", n)
			}
		}
		// The label the source dropped is dropped from the registration.
		if east := getSecret(t, c, "gke-east"); east.Labels["env"] != "" {
			t.Errorf("dropped label kept: %v", east.Labels)
		}
	})
}
