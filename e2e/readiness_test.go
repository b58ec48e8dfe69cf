package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
)

// TestHubNotReadyUntilSynced starts the hub as its ServiceAccount before that account is
// granted anything: its caches cannot sync, and /readyz says so with 500. Once
// config/rbac's roles are installed the caches sync, the registry is read and /readyz
// answers ok.
func TestHubNotReadyUntilSynced(t *testing.T) {
	env := framework.Start(t, framework.CRDs())
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fleet.RegistrationNamespace}}); err != nil {
		t.Fatal(err)
	}
	const hubUser = "system:serviceaccount:" + fleet.RegistrationNamespace + ":inferfleet-hub"
	cfg := impersonating(env.Config, hubUser)
	probes := freeAddr(t)
	startHubInProcess(t, cfg, app.HubOptions{MetricsAddr: "0", ProbeAddr: probes})

	readyz := func() (int, string, error) {
		resp, err := http.Get("http://" + probes + "/readyz?verbose")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	// Unready, and saying why, for a while: nothing lets the caches sync.
	framework.Eventually(t, 20*time.Second, "the probe server answers", func() error {
		_, _, err := readyz()
		return err
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		code, body, err := readyz()
		if err != nil || code == http.StatusOK || !strings.Contains(body, "caches-and-registry failed") {
			t.Fatalf("readyz before the hub may read anything: %d %v\n%s", code, err, body)
		}
		time.Sleep(500 * time.Millisecond)
	}

	if user := installRBAC(ctx, t, env.Client, "role.yaml", "role_binding.yaml"); user != hubUser {
		t.Fatalf("role_binding.yaml binds %s, not %s", user, hubUser)
	}
	framework.Eventually(t, 90*time.Second, "ready once the caches sync", func() error {
		code, body, err := readyz()
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%d: %s", code, body)
		}
		return nil
	})
}
