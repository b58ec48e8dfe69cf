package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/fleet"
)

// DefaultKVCacheInterval is how often the KV-cache use of every service's model servers is read.
const DefaultKVCacheInterval = 15 * time.Second

var _ manager.LeaderElectionRunnable = &KVCacheReader{}

// KVCacheReader periodically reads, for every service and every cluster its status gives
// replicas, the KV-cache use the model servers report (fleet.ReadKVCache) into
// inferfleet_cluster_kv_cache_utilization. It only reads: a member whose identity may not
// get pods/proxy, or whose servers do not answer, has no series.
type KVCacheReader struct {
	Hub      client.Reader
	Clusters fleet.ClusterGetter
	// Interval between reads (DefaultKVCacheInterval when zero); Timeout bounds one
	// cluster's read (5s when zero).
	Interval, Timeout time.Duration
	// Parallel bounds the reads in flight at once (8 when zero).
	Parallel int
	// Loads, when set, receives each round's reading of the services with
	// spec.autoscaling, for placement to scale them on.
	Loads *Loads

	set      map[[3]string]bool       // the series the last round set
	back     map[[3]string]*kvBackoff // the series whose servers did not answer lately
	requests map[[3]string]float64    // the endpoint pickers' request counters as last read
}

// maxKVCacheSkip is the most rounds a series whose servers do not answer is skipped: at the
// default interval, a read every two minutes at least.
const maxKVCacheSkip = 8

// kvBackoff spaces out the reads of a series whose model servers do not answer (not serving
// yet, no /metrics, or pods/proxy denied; none of the running ones answered): after n failures in a row, min(2^(n-1), 8)
// rounds are skipped, unless the cluster's ready replicas change meanwhile.
type kvBackoff struct {
	failures, skip int
	ready          int32
}

// NeedLeaderElection: only the leading hub reports, so a scrape sees one value per series.
func (k *KVCacheReader) NeedLeaderElection() bool { return true }

// Start reads every Interval until ctx ends.
func (k *KVCacheReader) Start(ctx context.Context) error {
	if k.Interval == 0 {
		k.Interval = DefaultKVCacheInterval
	}
	if k.Timeout == 0 {
		k.Timeout = 5 * time.Second
	}
	wait.NonSlidingUntilWithContext(ctx, k.readAll, k.Interval)
	return nil
}

// readAll reads each service's clusters in parallel (at most Parallel at once) and drops
// the series of clusters that did not answer this round (or that lost their replicas, or
// their service). A series that keeps failing is read less often (kvBackoff).
func (k *KVCacheReader) readAll(ctx context.Context) {
	var list v1alpha1.FleetInferenceServiceList
	if err := k.Hub.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "list services for KV-cache reads")
		return
	}
	if k.back == nil {
		k.back = map[[3]string]*kvBackoff{}
	}
	requests := map[[3]string]float64{}
	parallel := k.Parallel
	if parallel <= 0 {
		parallel = 8
	}
	slots := make(chan struct{}, parallel)
	var mu sync.Mutex
	var wg sync.WaitGroup
	now := map[[3]string]bool{}
	listed := map[[3]string]bool{}
	start := time.Now()
	loads := map[types.NamespacedName]*Load{}
	for i := range list.Items {
		svc := list.Items[i].DeepCopy()
		v1alpha1.SetDefaults(svc)
		var load *Load
		if svc.Spec.Autoscaling != nil && k.Loads != nil && svc.DeletionTimestamp.IsZero() {
			load = &Load{At: start, UID: svc.UID, Clusters: map[string]fleet.Servers{}}
			loads[client.ObjectKeyFromObject(svc)] = load
			if svc.Spec.ScalesToZero() {
				load.Pickers, load.PickerErrors = map[string]float64{}, map[string]string{}
				for _, st := range svc.Status.Clusters {
					if !st.Reachable {
						continue
					}
					series := [3]string{svc.Namespace, svc.Name, st.Name}
					wg.Add(1)
					go func() {
						defer wg.Done()
						slots <- struct{}{}
						n, err := k.readPickers(ctx, svc, st.Name)
						<-slots
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							load.PickerErrors[st.Name] = err.Error()
							return
						}
						if prev, ok := k.requests[series]; ok {
							load.Pickers[st.Name] = fleet.CounterIncrease(prev, n)
						}
						requests[series] = n
					}()
				}
			}
		}
		for _, st := range svc.Status.Clusters {
			if st.DesiredReplicas == 0 || !st.Reachable || !svc.DeletionTimestamp.IsZero() {
				continue
			}
			series := [3]string{svc.Namespace, svc.Name, st.Name}
			listed[series] = true
			if b := k.back[series]; b != nil && b.skip > 0 && b.ready == st.ReadyReplicas {
				b.skip--
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				slots <- struct{}{}
				servers, err := k.read(ctx, svc, st.Name)
				<-slots
				mu.Lock()
				defer mu.Unlock()
				if err == nil && load != nil {
					load.Clusters[st.Name] = servers
				}
				if err == nil {
					err = servers.Unanswered()
				}
				if err != nil {
					b := k.back[series]
					if b == nil {
						b = &kvBackoff{}
						k.back[series] = b
					}
					b.failures++
					b.skip = min(1<<min(b.failures-1, 8), maxKVCacheSkip)
					b.ready = st.ReadyReplicas
					log.FromContext(ctx).V(1).Info("model servers not read", "service", svc.Namespace+"/"+svc.Name, "cluster", st.Name,
						"reason", err.Error(), "skipRounds", b.skip)
					return
				}
				delete(k.back, series)
				// Servers that answer without the KV-cache gauge still count for the
				// autoscaler: they have no series, and are not read less often.
				kv, err := servers.KVCache(modelSelector(svc))
				if err != nil {
					log.FromContext(ctx).V(1).Info("no KV-cache use", "service", svc.Namespace+"/"+svc.Name, "cluster", st.Name, "reason", err.Error())
					return
				}
				kvCacheUtilization.WithLabelValues(series[:]...).Set(kv.Utilization)
				now[series] = true
			}()
		}
	}
	wg.Wait()
	for key, load := range loads {
		k.Loads.Put(key, *load)
	}
	for series := range k.set {
		if !now[series] {
			kvCacheUtilization.DeleteLabelValues(series[:]...)
		}
	}
	for series := range k.back {
		if !listed[series] {
			delete(k.back, series)
		}
	}
	k.set = now
	k.requests = requests
}

// read reads one service's model servers in one member: the pods of its Deployment
// (labelled app=<service>) on the port vLLM listens on.
func (k *KVCacheReader) read(ctx context.Context, svc *v1alpha1.FleetInferenceService, cluster string) (fleet.Servers, error) {
	cl, err := k.Clusters.GetCluster(ctx, multicluster.ClusterName(cluster))
	if err != nil {
		return fleet.Servers{}, err
	}
	core, err := corev1client.NewForConfigAndClient(cl.GetConfig(), cl.GetHTTPClient())
	if err != nil {
		return fleet.Servers{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, k.Timeout)
	defer cancel()
	return fleet.ReadServers(ctx, core.Pods(svc.Namespace), modelSelector(svc), svc.Spec.Model.Server.Port)
}

// readPickers reads the request counters of a service's endpoint pickers in one member.
func (k *KVCacheReader) readPickers(ctx context.Context, svc *v1alpha1.FleetInferenceService, cluster string) (float64, error) {
	cl, err := k.Clusters.GetCluster(ctx, multicluster.ClusterName(cluster))
	if err != nil {
		return 0, err
	}
	core, err := corev1client.NewForConfigAndClient(cl.GetConfig(), cl.GetHTTPClient())
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, k.Timeout)
	defer cancel()
	return fleet.ReadPickerRequests(ctx, core.Pods(svc.Namespace), render.EndpointPickerSelector(svc), render.EndpointPickerMetricsPort)
}

func modelSelector(svc *v1alpha1.FleetInferenceService) labels.Selector {
	return labels.SelectorFromSet(render.ModelLabels(svc))
}
