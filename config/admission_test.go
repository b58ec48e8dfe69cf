package config_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// TestTokenSecretAdmission installs config/admission on a real API server: a user may name
// as a service's token only a Secret they may get, and may change a service that keeps its
// reference without that right.
func TestTokenSecretAdmission(t *testing.T) {
	env := testenv.Start(t, testenv.CRDs())
	ctx := context.Background()
	admin := env.Client

	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "admission", "token-secret-access.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(raw)), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := docs.Decode(&u.Object); err != nil {
			break
		}
		if err := admin.Create(ctx, u); err != nil {
			t.Fatalf("install %s: %v", u.GetKind(), err)
		}
	}

	const ns = "team"
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hf-token", "other-token"} {
		if err := admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string][]byte{"token": []byte("hf_x")}}); err != nil {
			t.Fatal(err)
		}
	}
	// Both users may write services; only reader may read Secrets, and only hf-token.
	grant := func(user string, rules ...rbacv1.PolicyRule) client.Client {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns}, Rules: rules}
		bind := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}}
		for _, o := range []client.Object{role, bind} {
			if err := admin.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
		c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	services := rbacv1.PolicyRule{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"fleetinferenceservices"}, Verbs: []string{"get", "create", "update", "patch"}}
	writer := grant("writer", services)
	reader := grant("reader", services, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"hf-token"}, Verbs: []string{"get"}})

	service := func(name, secret string) *v1alpha1.FleetInferenceService {
		raw, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "samples", "fleet_v1alpha1_two-region-h100.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		svc := &v1alpha1.FleetInferenceService{}
		if err := yaml.UnmarshalStrict(raw, svc); err != nil {
			t.Fatal(err)
		}
		svc.Name, svc.Namespace = name, ns
		svc.Spec.Model.Server.HuggingFaceTokenSecretRef = &v1alpha1.SecretKeyRef{Name: secret, Key: "token"}
		return svc
	}
	denied := func(err error, user, secret string) error {
		if err == nil {
			return fmt.Errorf("%s named Secret %s and was let through", user, secret)
		}
		if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
			return fmt.Errorf("%s naming %s: %v, want a denial", user, secret, err)
		}
		for _, want := range []string{"spec.model.server.huggingFaceTokenSecretRef", user, ns + "/" + secret} {
			if !strings.Contains(err.Error(), want) {
				return fmt.Errorf("denial %q does not name %q", err, want)
			}
		}
		return nil
	}

	t.Run("naming a Secret one may not read is denied", func(t *testing.T) {
		// The policy takes effect once the API server has loaded it.
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := denied(writer.Create(ctx, service("by-writer", "hf-token")), "writer", "hf-token")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			_ = admin.Delete(ctx, service("by-writer", "hf-token"))
			time.Sleep(500 * time.Millisecond)
		}
		if err := denied(reader.Create(ctx, service("by-reader-other", "other-token")), "reader", "other-token"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("naming a Secret one may read is allowed", func(t *testing.T) {
		if err := reader.Create(ctx, service("by-reader", "hf-token")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a change that keeps the reference needs no access to it", func(t *testing.T) {
		svc := &v1alpha1.FleetInferenceService{}
		if err := writer.Get(ctx, client.ObjectKey{Namespace: ns, Name: "by-reader"}, svc); err != nil {
			t.Fatal(err)
		}
		svc.Spec.Model.Server.Image = "vllm/vllm-openai:v0.9.9"
		if err := writer.Update(ctx, svc); err != nil {
			t.Fatalf("writer changing the image: %v", err)
		}
		svc.Spec.Model.Server.HuggingFaceTokenSecretRef.Name = "other-token"
		if err := denied(writer.Update(ctx, svc), "writer", "other-token"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a service without a token needs nothing", func(t *testing.T) {
		svc := service("no-token", "x")
		svc.Spec.Model.Server.HuggingFaceTokenSecretRef = nil
		if err := writer.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
	})
}
