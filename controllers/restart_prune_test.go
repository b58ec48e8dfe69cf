package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1alpha2 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/e2e/framework"
)

// TestRestartedHubPrunes: what a service no longer renders, changed while no hub ran, is
// removed from every member by the next hub, and only that: another service's objects,
// and the service's own objects it still renders, stay.
func TestRestartedHubPrunes(t *testing.T) {
	f := startFleet(t, "west", "east")
	ctx := context.Background()
	hub := f.hub.Client
	createToken(ctx, t, hub)
	llama := twoRegionService("west", "east")
	mistral := twoRegionService("west", "east")
	mistral.Name = "mistral"
	mistral.Spec.Objectives = []v1alpha1.Objective{{Name: "chat", Priority: ptr.To[int32](5)}}
	for _, s := range []*v1alpha1.FleetInferenceService{llama, mistral} {
		if err := hub.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	objective := func(m client.Client, name string) error {
		return m.Get(ctx, client.ObjectKey{Namespace: "serving", Name: name}, &infv1alpha2.InferenceObjective{})
	}
	for _, name := range []string{"west", "east"} {
		m := f.members[name].Client
		eventually(t, 30*time.Second, name+" holding both services' objectives", func() error {
			for _, o := range []string{"food-review", "chat"} {
				if err := objective(m, o); err != nil {
					return err
				}
			}
			return nil
		})
	}

	f.stopHub()
	framework.UpdateService(t, hub, client.ObjectKeyFromObject(llama), func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Objectives = []v1alpha1.Objective{{Name: "base", Priority: ptr.To[int32](20)}}
	})
	f.stopHub = f.startHub()

	for _, name := range []string{"west", "east"} {
		m := f.members[name].Client
		eventually(t, 30*time.Second, name+" without the objective llama dropped while no hub ran", func() error {
			if err := objective(m, "food-review"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("food-review: %v", err)
			}
			return objective(m, "base")
		})
		if err := objective(m, "chat"); err != nil {
			t.Errorf("%s: mistral's objective: %v", name, err)
		}
		if _, err := getDeployment(ctx, m, "serving", "llama"); err != nil {
			t.Errorf("%s: llama's model server: %v", name, err)
		}
	}
}
