package v1alpha1_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/internal/fuzzspec"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// FuzzValidate sends services built from fuzz input (internal/fuzzspec) to a real API
// server (a server-side dry-run create) and through Validate: an object the API server
// rejects, Validate rejects too (fleetctl render checks objects no API server saw); an
// object the API server accepts, the hub can decode as stored, and Validate accepts.
func FuzzValidate(f *testing.F) {
	base, err := fuzzspec.Base(testenv.Root())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range fuzzspec.Seeds() {
		f.Add(s)
	}
	env := testenv.ForFuzz(f, testenv.CRDs())
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, input []byte) {
		u := fuzzspec.Object(base, input)
		stored := u.DeepCopy()
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		apiErr := env.Client.Create(callCtx, stored, client.DryRunAll)
		show := func() string { b, _ := yaml.Marshal(u.Object); return string(b) }
		switch {
		case apiErr == nil:
			svc, err := decodeJSON(stored.Object)
			if err != nil {
				t.Fatalf("the API server stores what the hub cannot decode: %v\n%s", err, show())
			}
			if err := svc.Validate(); err != nil {
				t.Fatalf("Validate rejects what the API server accepts: %v\n%s", err, show())
			}
		case apierrors.IsInvalid(apiErr) || apierrors.IsBadRequest(apiErr):
			svc, err := decodeJSON(u.Object)
			if err != nil {
				return // rejected by both
			}
			if err := svc.Validate(); err == nil {
				t.Fatalf("Validate accepts what the API server rejects (%v)\n%s", apiErr, show())
			}
		default:
			t.Fatalf("dry-run create: %v", apiErr)
		}
	})
}

// decodeJSON reads an object as the hub does (JSON into the typed service), then defaults it.
func decodeJSON(obj map[string]any) (*v1alpha1.FleetInferenceService, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	svc := &v1alpha1.FleetInferenceService{}
	if err := json.Unmarshal(raw, svc); err != nil {
		return nil, err
	}
	v1alpha1.SetDefaults(svc)
	return svc, nil
}
