package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"
)

var (
	_ multicluster.Provider         = Providers{}
	_ multicluster.ProviderRunnable = Providers{}
)

// Providers serves the clusters of several cluster sources under their own names, so a
// placement names "gke-west" whether the cluster came from a kubeconfig Secret or from GKE
// Hub. Names are unique across sources because every cluster has one registration Secret
// (see Registrar); on a clash the earlier provider answers.
type Providers []multicluster.Provider

// Get returns the cluster from the first provider that has it.
func (ps Providers) Get(ctx context.Context, name multicluster.ClusterName) (cluster.Cluster, error) {
	for _, p := range ps {
		cl, err := p.Get(ctx, name)
		if err == nil {
			return cl, nil
		}
		if !errors.Is(err, multicluster.ErrClusterNotFound) {
			return nil, err
		}
	}
	return nil, multicluster.ErrClusterNotFound
}

// IndexField adds the index in every provider.
func (ps Providers) IndexField(ctx context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	var errs []error
	for _, p := range ps {
		if err := p.IndexField(ctx, obj, field, extract); err != nil {
			errs = append(errs, fmt.Errorf("provider %T: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// Start runs every provider that runs on its own (the others, like the kubeconfig provider,
// run as controllers of the manager) and returns when all have stopped.
func (ps Providers) Start(ctx context.Context, aware multicluster.Aware) error {
	var wg sync.WaitGroup
	errs := make([]error, len(ps))
	for i, p := range ps {
		r, ok := p.(multicluster.ProviderRunnable)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Start(ctx, aware); err != nil {
				errs[i] = fmt.Errorf("provider %T: %w", p, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
