package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// DiscoveryFieldManager is the field manager of the registration Secrets discovery writes.
const DiscoveryFieldManager = "inferfleet-discovery"

// Registration is a cluster a discovery source found, as its registration Secret records it.
type Registration struct {
	Cluster
	// Kubeconfig, when set, is stored under KubeconfigKey and the Secret is labelled
	// KubeconfigLabel=true, so the kubeconfig provider engages the cluster. Sources that
	// engage their clusters themselves (GKE Hub) leave it empty.
	Kubeconfig []byte
	// Unhealthy, when set, is the source's word that the cluster is not healthy, and why
	// (AnnotationSourceUnhealthy).
	Unhealthy string
}

// Source is a discovery source: it says which clusters exist now.
type Source interface {
	// Name labels the registrations the source owns (SourceLabel); one word, like "kind".
	Name() string
	// Discover returns every cluster the source has now. An error means "unknown": the
	// registrations stay as they are until a later call succeeds.
	Discover(ctx context.Context) ([]Registration, error)
}

// ErrNotSynced is what a source returns before it has listed its clusters once: an empty
// list then would unregister every cluster on each hub restart.
var ErrNotSynced = errors.New("source has not listed its clusters yet")

// Registrar keeps the registration Secrets of one source in line with what it found. It
// writes only Secrets labelled with its source: a Secret of the same name that someone
// else wrote (a kubeconfig registration, another source's) is a conflict it reports and
// leaves alone. Annotations others put on its Secrets (cordon, reachability) stay.
type Registrar struct {
	Client    client.Client
	Namespace string
	Source    string
}

// NameTakenError says a cluster's registration name is taken by a Secret the source does
// not own.
type NameTakenError struct {
	Cluster, Source, Holder string
}

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("cluster %s found by %s is not registered: Secret %s already registers a cluster of that name (%s)", e.Cluster, e.Source, e.Cluster, e.Holder)
}

// Sync creates and updates the Secrets of regs and deletes the source's Secrets of clusters
// it no longer has. It writes nothing for a Secret that already matches. Errors are per
// cluster and joined; one bad cluster does not stop the others.
func (r *Registrar) Sync(ctx context.Context, regs []Registration) error {
	var secrets corev1.SecretList
	if err := r.Client.List(ctx, &secrets, client.InNamespace(r.Namespace)); err != nil {
		return fmt.Errorf("list registrations in %s: %w", r.Namespace, err)
	}
	live := map[string]*corev1.Secret{}
	for i := range secrets.Items {
		live[secrets.Items[i].Name] = &secrets.Items[i]
	}
	var errs []error
	want := map[string]bool{}
	for _, reg := range regs {
		want[reg.Name] = true
		s := live[reg.Name]
		if s != nil && s.Labels[SourceLabel] != r.Source {
			holder := "kubeconfig Secret"
			if src := s.Labels[SourceLabel]; src != "" {
				holder = "found by " + src
			}
			errs = append(errs, &NameTakenError{Cluster: reg.Name, Source: r.Source, Holder: holder})
			continue
		}
		if s != nil && s.DeletionTimestamp == nil && r.matches(s, reg) {
			continue
		}
		if err := r.apply(ctx, reg); err != nil {
			errs = append(errs, err)
		}
	}
	for name, s := range live {
		if want[name] || s.Labels[SourceLabel] != r.Source || s.DeletionTimestamp != nil {
			continue
		}
		pre := client.Preconditions{UID: &s.UID, ResourceVersion: &s.ResourceVersion}
		if err := r.Client.Delete(ctx, s, pre); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("unregister cluster %s: %w", name, err))
			continue
		}
		log.FromContext(ctx).Info("unregistered cluster", "cluster", name, "source", r.Source)
	}
	return errors.Join(errs...)
}

// secret is the registration Secret the source wants for reg: the cluster's labels, its
// region, the source and, when it has one, the kubeconfig.
func (r *Registrar) secret(reg Registration) *corev1.Secret {
	l := maps.Clone(reg.Labels)
	for k := range l {
		if k == KubeconfigLabel || strings.HasPrefix(k, LabelPrefix) {
			delete(l, k) // a source's labels never speak for the hub
		}
	}
	if l == nil {
		l = map[string]string{}
	}
	l[SourceLabel] = r.Source
	return RegistrationSecret(reg.Name, r.Namespace, reg.Region, reg.Kubeconfig, l)
}

// matches reports whether a registration Secret already says what reg says: the labels
// and kubeconfig wanted, and no label this source set earlier and no longer wants. Labels
// others added (a team's own selector labels) do not count, so they cause no writes.
func (r *Registrar) matches(s *corev1.Secret, reg Registration) bool {
	want := r.secret(reg).Labels
	for k, v := range want {
		if got, ok := s.Labels[k]; !ok || got != v {
			return false
		}
	}
	for k := range appliedLabels(s) {
		if _, ok := want[k]; !ok {
			return false
		}
	}
	kc, ok := s.Data[KubeconfigKey]
	return string(kc) == string(reg.Kubeconfig) && ok == (len(reg.Kubeconfig) > 0) &&
		s.Annotations[AnnotationSourceUnhealthy] == reg.Unhealthy
}

// appliedLabels are the label keys discovery's field manager owns on a Secret.
func appliedLabels(s *corev1.Secret) map[string]bool {
	out := map[string]bool{}
	for _, mf := range s.ManagedFields {
		if mf.Manager != DiscoveryFieldManager || mf.FieldsV1 == nil {
			continue
		}
		var fields struct {
			Metadata struct {
				Labels map[string]any `json:"f:labels"`
			} `json:"f:metadata"`
		}
		if err := json.Unmarshal(mf.FieldsV1.Raw, &fields); err != nil {
			continue
		}
		for k := range fields.Metadata.Labels {
			out[strings.TrimPrefix(k, "f:")] = true
		}
	}
	return out
}

// apply writes a registration with server-side apply: labels and data are the source's,
// annotations stay whoever's they are.
func (r *Registrar) apply(ctx context.Context, reg Registration) error {
	want := r.secret(reg)
	ac := corev1ac.Secret(want.Name, want.Namespace).WithLabels(want.Labels).WithType(want.Type)
	if len(want.Data) > 0 {
		ac = ac.WithData(want.Data)
	}
	if reg.Unhealthy != "" {
		// Omitted once healthy again: server-side apply removes what the manager no
		// longer applies.
		ac = ac.WithAnnotations(map[string]string{AnnotationSourceUnhealthy: reg.Unhealthy})
	}
	if err := r.Client.Apply(ctx, ac, client.FieldOwner(DiscoveryFieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("register cluster %s: %w", reg.Name, err)
	}
	log.FromContext(ctx).Info("registered cluster", "cluster", reg.Name, "source", r.Source, "region", reg.Region)
	return nil
}

// Discovery asks each source for its clusters on an interval and keeps their registration
// Secrets in the hub, where placement, the health monitor, cordons and `fleetctl clusters`
// find every member the same way whatever its source. It implements manager.Runnable.
type Discovery struct {
	Client    client.Client
	Namespace string
	Sources   []Source
	// Interval between two rounds (default 5s).
	Interval time.Duration

	mu      sync.Mutex
	lastErr map[string]string
	synced  map[string]bool
}

// Start runs rounds until ctx ends.
func (d *Discovery) Start(ctx context.Context) error {
	if d.Interval <= 0 {
		d.Interval = 5 * time.Second
	}
	wait.NonSlidingUntilWithContext(ctx, d.Round, d.Interval)
	return nil
}

// NeedLeaderElection: only the leader writes registrations.
func (d *Discovery) NeedLeaderElection() bool { return true }

// Round asks every source once and syncs what each found. A failing source keeps its
// registrations; each distinct error is logged once.
func (d *Discovery) Round(ctx context.Context) {
	logger := log.FromContext(ctx).WithName("discovery")
	for _, src := range d.Sources {
		regs, err := src.Discover(ctx)
		if err == nil {
			slices.SortFunc(regs, func(a, b Registration) int { return strings.Compare(a.Name, b.Name) })
			reg := &Registrar{Client: d.Client, Namespace: d.Namespace, Source: src.Name()}
			err = reg.Sync(log.IntoContext(ctx, logger), regs)
		}
		if ctx.Err() != nil {
			return
		}
		d.report(logger, src.Name(), err)
	}
}

// Synced reports whether a source's last round went through without an error.
func (d *Discovery) Synced(source string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.synced[source]
}

func (d *Discovery) report(logger logr.Logger, source string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastErr == nil {
		d.lastErr, d.synced = map[string]string{}, map[string]bool{}
	}
	d.synced[source] = err == nil
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if d.lastErr[source] == msg {
		return
	}
	d.lastErr[source] = msg
	switch {
	case errors.Is(err, ErrNotSynced):
		logger.Info("waiting for the source's first list", "source", source)
	case err != nil:
		logger.Error(err, "cluster discovery failed; registrations kept, will retry", "source", source)
	default:
		logger.Info("cluster discovery in sync", "source", source)
	}
}
