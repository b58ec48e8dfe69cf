package v1alpha1_test

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/internal/fuzzspec"
)

// FuzzValidate sends services built from fuzz input (internal/fuzzspec) to a real API
// server (a server-side dry-run create) and through Validate: an object the API server
// rejects, Validate rejects too (fleetctl render checks objects no API server saw); an
// object the API server accepts, the hub can decode as stored, and Validate accepts.
func FuzzValidate(f *testing.F) {
	base, env := fuzzspec.Start(f)
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
			svc, err := fuzzspec.Decode(stored.Object)
			if err != nil {
				t.Fatalf("the API server stores what the hub cannot decode: %v\n%s", err, show())
			}
			if err := svc.Validate(); err != nil {
				t.Fatalf("Validate rejects what the API server accepts: %v\n%s", err, show())
			}
		case apierrors.IsInvalid(apiErr) || apierrors.IsBadRequest(apiErr):
			svc, err := fuzzspec.Decode(u.Object)
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
