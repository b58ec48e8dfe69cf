package v1alpha1_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/inferfleet/inferfleet/api/v1alpha1"

	testenv "github.com/inferfleet/inferfleet/e2e/framework"
)

func overrides(o map[string]any) mutation {
	return set([]any{map[string]any{"name": "gke-west", "overrides": o}, map[string]any{"name": "gke-east"}}, "spec", "placement", "clusters")
}

// serverCases break the model server's command or startup timeout, in spec.model.server
// and in a cluster's overrides.
var serverCases = []struct {
	name   string
	mutate mutation
	field  string // empty: valid; else must appear in the message
}{
	{"startupTimeout 10s", set("10s", "spec", "model", "server", "startupTimeout"), ""},
	{"startupTimeout 6h", set("6h", "spec", "model", "server", "startupTimeout"), ""},
	{"startupTimeout 15m", set("15m", "spec", "model", "server", "startupTimeout"), ""},
	{"startupTimeout 9s", set("9s", "spec", "model", "server", "startupTimeout"), "model.server.startupTimeout"},
	{"startupTimeout 6h1s", set("6h0m1s", "spec", "model", "server", "startupTimeout"), "model.server.startupTimeout"},
	{"startupTimeout negative", set("-1m", "spec", "model", "server", "startupTimeout"), "model.server.startupTimeout"},
	{"override startupTimeout 20m", overrides(map[string]any{"startupTimeout": "20m"}), ""},
	{"override startupTimeout 5s", overrides(map[string]any{"startupTimeout": "5s"}), "overrides.startupTimeout"},
	{"override startupTimeout 7h", overrides(map[string]any{"startupTimeout": "7h"}), "overrides.startupTimeout"},
	{"command", set([]any{"vllm", "serve"}, "spec", "model", "server", "command"), ""},
	{"command with an empty item", set([]any{"vllm", ""}, "spec", "model", "server", "command"), "model.server.command[1]"},
	{"override command", overrides(map[string]any{"command": []any{"/opt/serve"}}), ""},
	{"override command with an empty item", overrides(map[string]any{"command": []any{""}}), "overrides.command[0]"},
}

func TestValidateServer(t *testing.T) {
	for _, tc := range serverCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := baseObject(t)
			tc.mutate(obj)
			err := decode(t, obj).Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("valid object rejected: %v", err)
			case tc.field != "" && err == nil:
				t.Fatal("Validate accepted an invalid object")
			case tc.field != "" && !strings.Contains(err.Error(), tc.field):
				t.Errorf("error %q does not name %q", err, tc.field)
			}
		})
	}
}

// TestAPIServerValidationServer runs the same cases through the CRD (schema and CEL).
func TestAPIServerValidationServer(t *testing.T) {
	env := testenv.Start(t, testenv.CRDs())
	ctx := context.Background()
	for i, tc := range serverCases {
		t.Run(tc.name, func(t *testing.T) {
			u := &unstructured.Unstructured{Object: baseObject(t)}
			u.SetName(fmt.Sprintf("server-%d", i))
			tc.mutate(u.Object)
			err := env.Client.Create(ctx, u)
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("valid object rejected: %v", err)
			case tc.field != "" && err == nil:
				t.Fatal("API server accepted an invalid object")
			case tc.field != "" && !strings.Contains(err.Error(), tc.field):
				t.Errorf("message does not name %q: %v", tc.field, err)
			}
		})
	}
}

func TestCordons(t *testing.T) {
	for _, tc := range []struct {
		annotation string
		want       []string
	}{
		{"", nil},
		{"gke-west", []string{"gke-west"}},
		{" gke-west , ,gke-east,", []string{"gke-west", "gke-east"}},
	} {
		s := &v1alpha1.FleetInferenceService{}
		if tc.annotation != "" {
			s.Annotations = map[string]string{v1alpha1.AnnotationCordon: tc.annotation}
		}
		if got := s.Cordons(); !slices.Equal(got, tc.want) {
			t.Errorf("Cordons() of %q = %q, want %q", tc.annotation, got, tc.want)
		}
	}
}
