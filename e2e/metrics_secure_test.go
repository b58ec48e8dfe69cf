package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
)

// TestSecureMetrics runs the hub as its ServiceAccount, with config/rbac installed and
// metrics served as the hub binary serves them by default: HTTPS, and only to callers the
// API server authenticates (TokenReview) and authorizes (SubjectAccessReview for GET
// /metrics). A scrape without a token gets 401, one with a token of an account not bound
// to config/rbac/metrics_reader_role.yaml gets 403, and the bound reader gets the metrics,
// over HTTP/1.1 (HTTP/2 is off).
func TestSecureMetrics(t *testing.T) {
	env := framework.Start(t, framework.CRDs())
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fleet.RegistrationNamespace}}); err != nil {
		t.Fatal(err)
	}
	hubUser := installRBAC(ctx, t, env.Client, "role.yaml", "role_binding.yaml", "metrics_reader_role.yaml")
	cfg := impersonating(env.Config, hubUser)
	addr := freeAddr(t)
	startHubInProcess(t, cfg, app.HubOptions{MetricsAddr: addr, MetricsSecure: true, ProbeAddr: "0"})

	// Two ServiceAccounts: one bound to the reader role, one not.
	token := func(name string) string {
		t.Helper()
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
		if err := env.Client.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
		tr := &authnv1.TokenRequest{}
		if err := env.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	reader, stranger := token("prometheus"), token("stranger")
	if err := env.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-reads-inferfleet"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "inferfleet-hub-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: "prometheus"}},
	}); err != nil {
		t.Fatal(err)
	}

	// The hub's certificate is self-signed: the scrape checks the rest, not the chain.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	scrape := func(bearer string) (int, string, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Proto, string(b), err
	}
	framework.Eventually(t, 30*time.Second, "the bound reader scrapes the metrics", func() error {
		code, proto, body, err := scrape(reader)
		if err != nil {
			return err
		}
		if code != http.StatusOK || !strings.Contains(body, "# TYPE ") {
			return fmt.Errorf("%d: %.200s", code, body)
		}
		if !strings.Contains(body, `inferfleet_build_info{git_commit=`) {
			return fmt.Errorf("no inferfleet_build_info: %.300s", body)
		}
		if proto != "HTTP/1.1" {
			return fmt.Errorf("served over %s: HTTP/2 must be off", proto)
		}
		return nil
	})
	for _, tc := range []struct {
		who, token string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		// The API server rejects the token with an error, which controller-runtime's filter
		// answers with 500: refused all the same.
		{"an unknown token", "not-a-token", http.StatusInternalServerError},
		{"an account without the reader role", stranger, http.StatusForbidden},
	} {
		if code, _, body, err := scrape(tc.token); err != nil || code != tc.want || strings.Contains(body, "# TYPE ") {
			t.Errorf("scrape with %s: %d %v, want %d and no metrics\n%.200s", tc.who, code, err, tc.want, body)
		}
	}
	// The chart's way: a release's metrics.readers, bound by the chart to its own
	// metrics-reader ClusterRole, may scrape too.
	chartReader := token("chart-prometheus")
	for _, u := range helmTemplate(t, "edge", "fleet-edge", "templates/metrics-reader.yaml",
		`metrics.readers=[{"kind":"ServiceAccount","name":"chart-prometheus","namespace":"default"}]`) {
		if err := env.Client.Create(ctx, u); err != nil {
			t.Fatalf("create the chart's %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	framework.Eventually(t, 30*time.Second, "the chart's metrics reader scrapes the metrics", func() error {
		code, _, body, err := scrape(chartReader)
		if err != nil {
			return err
		}
		if code != http.StatusOK || !strings.Contains(body, "# TYPE ") {
			return fmt.Errorf("%d: %.200s", code, body)
		}
		return nil
	})

	// Plain HTTP on the same port gets no metrics either.
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "# TYPE ") {
			t.Errorf("plain HTTP served the metrics")
		}
	}
}

// helmTemplate renders one template of the chart with bin/helm, with --set-json values.
func helmTemplate(t *testing.T, release, namespace, template string, setJSON ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", release, filepath.Join(framework.Root(), "deploy", "helm", "inferfleet"), "--namespace", namespace, "--show-only", template}
	for _, v := range setJSON {
		args = append(args, "--set-json", v)
	}
	out, err := exec.Command(filepath.Join(framework.BinDir(), "helm"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}
