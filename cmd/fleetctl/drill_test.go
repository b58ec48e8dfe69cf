package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// TestRunDrill follows drills run by the hub's drill controller against a real API server,
// with the test playing MemberSync's part for one service.
func TestRunDrill(t *testing.T) {
	env := framework.Start(t, framework.CRDs())
	framework.StartDrillController(t, env)
	c := env.Client
	ns := "drill-run"
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	llama := drillTestService(t, c, ns, "llama")
	fakeCtx, stopFake := context.WithCancel(context.Background())
	defer stopFake()
	go fakeMemberSync(fakeCtx, c, llama, "west", "east")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var phases []v1alpha1.DrillPhase
	drill := &v1alpha1.FailoverDrill{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "drill-west-", Namespace: ns},
		Spec:       v1alpha1.FailoverDrillSpec{Cluster: "west", Timeout: &metav1.Duration{Duration: 20 * time.Second}},
	}
	final, err := runDrill(ctx, c, drill, func(d *v1alpha1.FailoverDrill) { phases = append(phases, d.Status.Phase) })
	if err != nil {
		t.Fatalf("runDrill: %v (phases %v)", err, phases)
	}
	if final.Status.Phase != v1alpha1.DrillSucceeded || final.Status.TimeToRecover == nil || final.Status.TimeToFailback == nil {
		t.Errorf("final drill: %+v", final.Status)
	}
	// The first call is the created drill; Recovered lasts too short to be polled.
	if len(phases) < 4 || phases[0] != "" || phases[1] != v1alpha1.DrillDraining || phases[len(phases)-2] != v1alpha1.DrillRestoring || phases[len(phases)-1] != v1alpha1.DrillSucceeded {
		t.Errorf("progress phases = %v", phases)
	}
	want := []v1alpha1.DrillServiceReport{{Name: "llama",
		Before: []v1alpha1.DrillClusterShare{{Cluster: "east", Replicas: 3}, {Cluster: "west", Replicas: 3}},
		During: []v1alpha1.DrillClusterShare{{Cluster: "east", Replicas: 6}, {Cluster: "west", Replicas: 0}}}}
	if !slices.EqualFunc(final.Status.Services, want, func(x, y v1alpha1.DrillServiceReport) bool {
		return x.Name == y.Name && slices.Equal(x.Before, y.Before) && slices.Equal(x.During, y.During)
	}) {
		t.Errorf("services = %+v, want %+v", final.Status.Services, want)
	}
	t.Logf("report: recover %s, failback %s, services %+v", durationText(final.Status.TimeToRecover), durationText(final.Status.TimeToFailback), final.Status.Services)

	// `fleetctl drill region` runs the same, reaching the hub through a kubeconfig path list.
	kcPath := testenv.KubeconfigFile(t, env.Config, "hub")
	list := writeKubeconfig(t, "", "other") + string(filepath.ListSeparator) + kcPath
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"drill", "region", "--cluster", "west", "-n", ns, "--timeout", "20s", "--kubeconfig", list})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("fleetctl drill region --kubeconfig %s: %v\n%s", list, err, &out)
	}
	t.Logf("fleetctl drill region:\n%s", &out)
	for _, want := range []string{"Draining", "west cordoned on llama", "Restoring", "Succeeded",
		"Failover drill " + ns + "/drill-west-"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("drill region output lacks %q:\n%s", want, &out)
		}
	}
	for _, want := range []string{`llama +east=3 west=3 +east=6 west=0`, `Time to recover: +[0-9.]+m?s\n`, `Time to failback: +[0-9.]+m?s\n`} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("drill region report does not match %q:\n%s", want, &out)
		}
	}

	// A drill that fails returns errDrillFailed with its message.
	failing := &v1alpha1.FailoverDrill{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "drill-south-", Namespace: ns},
		Spec:       v1alpha1.FailoverDrillSpec{Cluster: "south"},
	}
	if _, err := runDrill(ctx, c, failing, nil); !errors.Is(err, errDrillFailed) || !strings.Contains(err.Error(), "south") {
		t.Errorf("failing drill: err = %v", err)
	}
}

// drillTestService creates a service placed on east and west with 3 replicas each, ready.
func drillTestService(t *testing.T, c client.Client, ns, name string) *v1alpha1.FleetInferenceService {
	t.Helper()
	svc := &v1alpha1.FleetInferenceService{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.FleetInferenceServiceSpec{
			Model:     v1alpha1.ModelSpec{Name: "meta-llama/Llama-3.1-8B-Instruct"},
			Replicas:  6,
			Placement: v1alpha1.PlacementSpec{Clusters: []v1alpha1.ClusterPlacement{{Name: "east"}, {Name: "west"}}},
		},
	}
	if err := c.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	setClusterStatus(context.Background(), c, svc, drillTestCluster("east", 3, 3), drillTestCluster("west", 3, 3))
	return svc
}

func drillTestCluster(name string, desired, ready int32) v1alpha1.ClusterStatus {
	return v1alpha1.ClusterStatus{Name: name, Reachable: true, DesiredReplicas: desired, ReadyReplicas: ready, Health: v1alpha1.Healthy}
}

func drillTestFailedOver(name string) v1alpha1.ClusterStatus {
	st := drillTestCluster(name, 0, 0)
	st.FailedOver = true
	return st
}

// setClusterStatus writes the service's per-cluster status as MemberSync would, for its
// current generation.
func setClusterStatus(ctx context.Context, c client.Client, svc *v1alpha1.FleetInferenceService, clusters ...v1alpha1.ClusterStatus) {
	_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &v1alpha1.FleetInferenceService{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(svc), cur); err != nil {
			return err
		}
		cur.Status.ObservedGeneration, cur.Status.Clusters = cur.Generation, clusters
		return c.Status().Update(ctx, cur)
	})
}

// fakeMemberSync plays MemberSync's part for one service placed on two clusters with 3
// replicas each: a cordon on out moves its share to other, ready half a second later;
// without the cordon the share comes back, ready half a second later.
func fakeMemberSync(ctx context.Context, c client.Client, svc *v1alpha1.FleetInferenceService, out, other string) {
	pause := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
			return true
		}
	}
	failedOver := false
	for pause() {
		cur := &v1alpha1.FleetInferenceService{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(svc), cur); err != nil {
			continue
		}
		cordoned := slices.Contains(cur.Cordons(), out)
		switch {
		case cordoned && !failedOver:
			failedOver = true
			setClusterStatus(ctx, c, svc, drillTestCluster(other, 6, 3), drillTestFailedOver(out))
			if pause() {
				setClusterStatus(ctx, c, svc, drillTestCluster(other, 6, 6), drillTestFailedOver(out))
			}
		case !cordoned && failedOver:
			failedOver = false
			setClusterStatus(ctx, c, svc, drillTestCluster(other, 6, 6), drillTestCluster(out, 3, 0))
			if pause() {
				setClusterStatus(ctx, c, svc, drillTestCluster(other, 3, 3), drillTestCluster(out, 3, 3))
			}
		}
	}
}
