package e2e

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1alpha2 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/localfleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// faultyAPIServer stands in front of a member's API server: it forwards every request
// (watches too) with the member's admin credentials, and while failing answers each with
// the status set instead, counting them.
type faultyAPIServer struct {
	*httptest.Server
	failing atomic.Int32 // 0: forward; else the status to answer
	hits    atomic.Int64 // requests answered with it
}

func newFaultyAPIServer(t *testing.T, member *rest.Config) *faultyAPIServer {
	t.Helper()
	target, err := url.Parse(member.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(member)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport, proxy.FlushInterval = transport, -1
	f := &faultyAPIServer{}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code := int(f.failing.Load()); code != 0 {
			f.hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			if code == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "1")
			}
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected %d","code":%d}`, code, code)
			return
		}
		r.Header.Del("Authorization")
		proxy.ServeHTTP(w, r)
	}))
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

// kubeconfig is a kubeconfig for the stand-in (any token: it authenticates itself).
func (f *faultyAPIServer) kubeconfig(t *testing.T) []byte {
	t.Helper()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	kc, err := testenv.Kubeconfig(&rest.Config{Host: f.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}, BearerToken: "stand-in"}, "faulty")
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// TestMemberFaultsOnLocalFleet: a member whose API server answers 429, then 503, for a
// while gets a status that says so, is not hammered (the hub backs off) and holds up no
// other member, and is served again when it recovers; a member whose etcd restarts keeps
// being watched (the hub's watches re-list), so drift there is still reverted.
func TestMemberFaultsOnLocalFleet(t *testing.T) {
	lf := framework.StartLocalFleet(t, localfleet.DefaultMembers())
	ctx := context.Background()
	hub := lf.Hub.Client
	east, west := lf.Members["gke-east"], lf.Members["gke-west"]

	faulty := newFaultyAPIServer(t, east.Local.RESTConfig())
	s, err := registration(ctx, hub, "gke-east")
	if err != nil {
		t.Fatal(err)
	}
	s.Data[fleet.KubeconfigKey] = faulty.kubeconfig(t)
	if err := hub.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	lf.RunHub(t, app.HubOptions{MemberTimeout: 5 * time.Second, ProbeInterval: time.Second})
	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	svc.Spec.Placement.Failover = v1alpha1.FailoverSpec{Policy: v1alpha1.FailoverNone}
	createToken(ctx, t, hub)
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)
	expectShares(ctx, t, hub, key, time.Minute, "3 ready in each member", map[string]int32{"gke-west": 3, "gke-east": 3})

	objective := func(c client.Client, name string) func() error {
		return func() error {
			return c.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: name}, &infv1alpha2.InferenceObjective{})
		}
	}
	for _, tc := range []struct {
		code int
		want string
	}{
		{http.StatusTooManyRequests, "injected 429"},
		{http.StatusServiceUnavailable, "injected 503"},
	} {
		t.Run(fmt.Sprintf("the member answers %d for a while", tc.code), func(t *testing.T) {
			const window = 20 * time.Second
			faulty.hits.Store(0)
			faulty.failing.Store(int32(tc.code))
			began := time.Now()
			framework.Eventually(t, window, "gke-east's entry says what it answers", func() error {
				st := clusterStatus(getService(ctx, t, hub, key), "gke-east")
				if st.Reachable || !strings.Contains(st.Message, tc.want) {
					return fmt.Errorf("gke-east: reachable %v, message %q, want %q", st.Reachable, st.Message, tc.want)
				}
				return nil
			})
			// The other member takes a change meanwhile.
			name := fmt.Sprintf("during-%d", tc.code)
			framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
				s.Spec.Objectives = append(s.Spec.Objectives, v1alpha1.Objective{Name: name})
			})
			framework.Eventually(t, 15*time.Second, "the change in gke-west", objective(west.Client, name))
			time.Sleep(time.Until(began.Add(window)))
			hits := faulty.hits.Load()
			rate := float64(hits) / time.Since(began).Seconds()
			t.Logf("%d requests to gke-east in %s of %d answers (%.1f/s)", hits, time.Since(began).Round(time.Second), tc.code, rate)
			// Probes (1/s), reflectors and syncs all back off: a hot loop would be
			// hundreds a second.
			if rate > 20 {
				t.Errorf("%.1f requests a second to a member answering %d: the hub does not back off", rate, tc.code)
			}
			faulty.failing.Store(0)
			framework.Eventually(t, time.Minute, "the change in gke-east once it answers again", objective(east.Client, name))
			framework.Eventually(t, 30*time.Second, "gke-east reachable again", func() error {
				if st := clusterStatus(getService(ctx, t, hub, key), "gke-east"); !st.Reachable {
					return fmt.Errorf("gke-east %+v", st)
				}
				return nil
			})
		})
	}

	t.Run("the member's etcd restarts: the hub still watches it", func(t *testing.T) {
		if err := west.Local.RestartEtcd(ctx); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, 10*time.Second, "edit the model Deployment in gke-west", func() error {
			d, err := modelDeployment(ctx, west.Client, key)
			if err != nil {
				return err
			}
			d.Spec.Replicas = ptr.To[int32](1)
			return west.Client.Update(ctx, d)
		})
		// Reverted by the watch, well before the 5-minute resync.
		framework.Eventually(t, 30*time.Second, "the edit reverted", func() error {
			d, err := modelDeployment(ctx, west.Client, key)
			if err != nil {
				return err
			}
			if r := ptr.Deref(d.Spec.Replicas, 0); r != 3 {
				return fmt.Errorf("gke-west model Deployment at %d replicas, want 3", r)
			}
			return nil
		})
	})
}
