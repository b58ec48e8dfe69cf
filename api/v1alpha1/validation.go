package v1alpha1

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

var (
	dns1035Label = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	acceleratorT = regexp.MustCompile(`^(nvidia|tpu)-[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	tpuTopology  = regexp.MustCompile(`^[1-9][0-9]*x[1-9][0-9]*(x[1-9][0-9]*)?$`)
)

// MaxNameLength bounds metadata.name so that derived names (<name>-epp and the like) stay
// valid DNS labels in every member.
const MaxNameLength = 58

// MaxRoutedNames is how many model names body-based routing can match: Gateway API allows
// 128 matches in one HTTPRoute.
const MaxRoutedNames = 128

// Validate checks a defaulted FleetInferenceService with the rules the CRD enforces, so that
// objects that never passed the API server (fleetctl render, older CRDs) fail the same way.
func (s *FleetInferenceService) Validate() error {
	var errs field.ErrorList
	if n := s.Name; len(n) > MaxNameLength || !dns1035Label.MatchString(n) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), n,
			fmt.Sprintf("must be a DNS-1035 label of at most %d characters", MaxNameLength)))
	}
	spec := field.NewPath("spec")
	errs = append(errs, validateModel(&s.Spec.Model, spec.Child("model"))...)

	names := map[string]bool{}
	for i, o := range s.Spec.Objectives {
		errs = append(errs, listKey(spec.Child("objectives").Index(i).Child("name"), o.Name, subdomainKey, names)...)
	}
	if r := s.Spec.Replicas; r < 0 || r > 10000 {
		errs = append(errs, field.Invalid(spec.Child("replicas"), r, "must be 0..10000"))
	}
	// 0 is unset in Go, and defaults to 1 as the API server's default does.
	if r := s.Spec.EndpointPicker.Replicas; r < 0 || r > 10 {
		errs = append(errs, field.Invalid(spec.Child("endpointPicker", "replicas"), r, "must be 1..10"))
	}
	switch s.Spec.DeletionPolicy {
	case DeletionDelete, DeletionOrphan:
	default:
		errs = append(errs, field.NotSupported(spec.Child("deletionPolicy"), s.Spec.DeletionPolicy, []DeletionPolicy{DeletionDelete, DeletionOrphan}))
	}
	errs = append(errs, validateAutoscaling(&s.Spec, spec)...)
	errs = append(errs, validatePlacement(&s.Spec.Placement, spec.Child("placement"))...)
	errs = append(errs, validateGateway(&s.Spec.Gateway, spec.Child("gateway"))...)
	errs = append(errs, validateBalancing(&s.Spec.Balancing, spec.Child("balancing"))...)
	errs = append(errs, validateRouting(&s.Spec, spec)...)
	errs = append(errs, validateComputeClasses(&s.Spec, spec)...)
	errs = append(errs, validateServer(&s.Spec, spec)...)
	if m := s.Spec.EndpointPicker.Monitoring; m != nil && m.GKE && s.Spec.Gateway.Provider != ProviderGKE {
		errs = append(errs, field.Invalid(spec.Child("endpointPicker", "monitoring", "gke"), true, "needs gateway.provider GKE (Managed Prometheus)"))
	}
	if s.Spec.Gateway.BodyBasedRouting && len(s.Spec.Objectives)+len(s.Spec.Model.LoraAdapters) > MaxRoutedNames-1 {
		errs = append(errs, field.TooMany(spec.Child("gateway", "bodyBasedRouting"), len(s.Spec.Objectives)+len(s.Spec.Model.LoraAdapters), MaxRoutedNames-1))
	}
	return errs.ToAggregate()
}

func validateModel(m *ModelSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), "the model clients request"))
	}
	if port := m.Server.Port; port < 1 || port > 65535 {
		errs = append(errs, field.Invalid(p.Child("server", "port"), port, "must be 1..65535"))
	}
	errs = append(errs, validateArgs(m.Server.Args, p.Child("server", "args"))...)
	if m.Accelerator != nil {
		errs = append(errs, validateAccelerator(m.Accelerator, p.Child("accelerator"))...)
	} else if m.ComputeClass != "" {
		errs = append(errs, field.Required(p.Child("accelerator"), "model.computeClass needs model.accelerator"))
	}
	for i := range m.FallbackAccelerators {
		errs = append(errs, validateAccelerator(&m.FallbackAccelerators[i], p.Child("fallbackAccelerators").Index(i))...)
	}
	if len(m.FallbackAccelerators) > 0 && m.ComputeClass == "" {
		errs = append(errs, field.Required(p.Child("computeClass"), "model.fallbackAccelerators needs model.computeClass"))
	}
	ids := map[string]bool{}
	for i, l := range m.LoraAdapters {
		ip := p.Child("loraAdapters").Index(i)
		errs = append(errs, listKey(ip.Child("id"), l.ID, subdomainKey, ids)...)
		if l.Source == "" {
			errs = append(errs, field.Required(ip.Child("source"), ""))
		}
	}
	return errs
}

func validateArgs(args []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, a := range args {
		if a == "--model" || a == "--port" || strings.HasPrefix(a, "--model=") || strings.HasPrefix(a, "--port=") {
			errs = append(errs, field.Invalid(p.Index(i), a, "--model and --port are derived from the spec"))
		}
	}
	return errs
}

func validateAccelerator(a *AcceleratorSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !acceleratorT.MatchString(a.Type) {
		errs = append(errs, field.Invalid(p.Child("type"), a.Type, "must be a GKE accelerator such as nvidia-l4 or tpu-v5-lite-podslice"))
	}
	if a.Count < 1 || a.Count > 64 {
		errs = append(errs, field.Invalid(p.Child("count"), a.Count, "must be 1..64"))
	}
	switch {
	case a.IsTPU() && !tpuTopology.MatchString(a.Topology):
		errs = append(errs, field.Required(p.Child("topology"), "TPU types need a topology such as 2x2"))
	case !a.IsTPU() && a.Topology != "":
		errs = append(errs, field.Invalid(p.Child("topology"), a.Topology, "applies to TPU types only"))
	}
	return errs
}

func validateAutoscaling(spec *FleetInferenceServiceSpec, p *field.Path) field.ErrorList {
	a := spec.Autoscaling
	if a == nil {
		return nil
	}
	var errs field.ErrorList
	ap := p.Child("autoscaling")
	lo := ptr.Deref(a.MinReplicas, 1)
	if lo < 0 {
		errs = append(errs, field.Invalid(ap.Child("minReplicas"), lo, "must not be negative"))
	}
	if w := a.IdleWindowSeconds; w != nil {
		if lo != 0 {
			errs = append(errs, field.Invalid(ap.Child("idleWindowSeconds"), *w, "is the wait before scaling to zero: it needs autoscaling.minReplicas 0"))
		}
		if *w < 0 || *w > 86400 {
			errs = append(errs, field.Invalid(ap.Child("idleWindowSeconds"), *w, "must be 0..86400"))
		}
	}
	if a.MaxReplicas < 1 {
		errs = append(errs, field.Invalid(ap.Child("maxReplicas"), a.MaxReplicas, "must be at least 1"))
	}
	if lo > a.MaxReplicas {
		errs = append(errs, field.Invalid(ap.Child("minReplicas"), lo, "must not exceed autoscaling.maxReplicas"))
	} else if spec.Replicas < lo || spec.Replicas > a.MaxReplicas {
		errs = append(errs, field.Invalid(p.Child("replicas"), spec.Replicas,
			"must be within autoscaling.minReplicas and autoscaling.maxReplicas: with autoscaling it is the total the autoscaler starts from"))
	}
	if len(a.Metrics) == 0 {
		errs = append(errs, field.Required(ap.Child("metrics"), "at least one signal"))
	}
	seen := map[AutoscalingMetricType]bool{}
	for i, m := range a.Metrics {
		mp := ap.Child("metrics").Index(i)
		if seen[m.Type] {
			errs = append(errs, field.Duplicate(mp.Child("type"), m.Type))
		}
		seen[m.Type] = true
		switch m.Type {
		case MetricKVCacheUtilization:
			if m.AverageUtilization == nil || m.AverageValue != nil {
				errs = append(errs, field.Invalid(mp.Child("averageUtilization"), m.AverageUtilization, "KVCacheUtilization takes averageUtilization (percent), not averageValue"))
			} else if u := *m.AverageUtilization; u < 1 || u > 100 {
				errs = append(errs, field.Invalid(mp.Child("averageUtilization"), u, "must be 1..100"))
			}
		case MetricWaitingRequests, MetricRunningRequests:
			if m.AverageValue == nil || m.AverageUtilization != nil {
				errs = append(errs, field.Invalid(mp.Child("averageValue"), m.AverageValue, string(m.Type)+" takes averageValue (requests per replica), not averageUtilization"))
			} else if m.AverageValue.Sign() <= 0 {
				errs = append(errs, field.Invalid(mp.Child("averageValue"), m.AverageValue.String(), "must be greater than 0"))
			}
		default:
			errs = append(errs, field.NotSupported(mp.Child("type"), m.Type, []AutoscalingMetricType{MetricKVCacheUtilization, MetricWaitingRequests, MetricRunningRequests}))
		}
	}
	return errs
}

func validatePlacement(pl *PlacementSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if (len(pl.Clusters) > 0) == (pl.ClusterSelector != nil) {
		errs = append(errs, field.Invalid(p, "", "needs exactly one of clusters and clusterSelector"))
	}
	seen := map[string]bool{}
	for i, c := range pl.Clusters {
		cp := p.Child("clusters").Index(i)
		errs = append(errs, listKey(cp.Child("name"), c.Name, labelKey, seen)...)
		if c.Weight != nil && *c.Weight < 0 {
			errs = append(errs, field.Invalid(cp.Child("weight"), *c.Weight, "must not be negative"))
		}
		if c.MinReplicas != nil && c.MaxReplicas != nil && *c.MinReplicas > *c.MaxReplicas {
			errs = append(errs, field.Invalid(cp.Child("minReplicas"), *c.MinReplicas, "must not exceed maxReplicas"))
		}
		if o := c.Overrides; o != nil {
			if o.Accelerator != nil {
				errs = append(errs, validateAccelerator(o.Accelerator, cp.Child("overrides", "accelerator"))...)
			}
			errs = append(errs, validateArgs(o.Args, cp.Child("overrides", "args"))...)
		}
	}
	f := pl.Failover
	if f.UnhealthyAfter != nil && f.UnhealthyAfter.Duration <= 0 {
		errs = append(errs, field.Invalid(p.Child("failover", "unhealthyAfter"), f.UnhealthyAfter.Duration.String(), "must be positive"))
	}
	so := pl.Spillover
	if so.Policy != "" && so.Policy != SpilloverSpill && so.Policy != SpilloverNone {
		errs = append(errs, field.NotSupported(p.Child("spillover", "policy"), so.Policy, []SpilloverPolicy{SpilloverSpill, SpilloverNone}))
	}
	for _, c := range []struct {
		name string
		d    *metav1.Duration
	}{{"after", so.After}, {"scaleUpTimeout", so.ScaleUpTimeout}} {
		if name, d := c.name, c.d; d != nil && (d.Duration < 0 || d.Duration > 24*time.Hour) {
			errs = append(errs, field.Invalid(p.Child("spillover", name), d.Duration.String(), "must be between 0s and 24h"))
		}
	}
	return errs
}

func validateGateway(g *GatewaySpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if g.Provider != ProviderGKE && g.Provider != ProviderInferencePoolImport {
		errs = append(errs, field.NotSupported(p.Child("provider"), g.Provider, []Provider{ProviderGKE, ProviderInferencePoolImport}))
	}
	if g.ClassName == "" {
		errs = append(errs, field.Required(p.Child("className"), "required for provider InferencePoolImport"))
	}
	if !dns1123Label.MatchString(g.Name) {
		errs = append(errs, field.Invalid(p.Child("name"), g.Name, "must be a DNS-1123 label"))
	}
	if g.Logging != nil && g.Logging.Enabled && g.Provider != ProviderGKE {
		errs = append(errs, field.Invalid(p.Child("logging"), "enabled", "a GCPBackendPolicy setting: provider GKE only"))
	}
	if !strings.HasPrefix(g.PathPrefix, "/") {
		errs = append(errs, field.Invalid(p.Child("pathPrefix"), g.PathPrefix, "must start with /"))
	}
	return errs
}

func validateBalancing(b *BalancingSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch b.Mode {
	case BalancingCustomMetrics:
		if b.MaxInFlightRequestsPerEndpoint != nil {
			errs = append(errs, field.Forbidden(p.Child("maxInFlightRequestsPerEndpoint"), "mutually exclusive with mode CustomMetrics"))
		}
		if m := b.CustomMetric; m != nil && (m.MaxUtilization < 1 || m.MaxUtilization > 100) {
			errs = append(errs, field.Invalid(p.Child("customMetric", "maxUtilization"), m.MaxUtilization, "must be 1..100"))
		}
	case BalancingInFlight:
		if b.CustomMetric != nil {
			errs = append(errs, field.Forbidden(p.Child("customMetric"), "mutually exclusive with mode InFlight"))
		}
		if b.MaxInFlightRequestsPerEndpoint == nil {
			errs = append(errs, field.Required(p.Child("maxInFlightRequestsPerEndpoint"), "required with mode InFlight"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("mode"), b.Mode, []BalancingMode{BalancingCustomMetrics, BalancingInFlight}))
	}
	return errs
}

// validateRouting rejects gateway configurations that cannot serve: a regional class asked
// to route to an imported pool, a multi-cluster class asked to route to a local pool, and a
// regional Gateway over several clusters.
func validateRouting(spec *FleetInferenceServiceSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	g := &spec.Gateway
	gp := p.Child("gateway")
	switch {
	case g.Mode == GatewayRegional && strings.HasSuffix(g.ClassName, "-mc"):
		errs = append(errs, field.Invalid(gp.Child("className"), g.ClassName,
			"is a multi-cluster class, which routes to an imported pool; gateway.mode Regional routes to the InferencePool in its own cluster: use a regional class (gke-l7-regional-external-managed, gke-l7-rilb) or gateway.mode MultiCluster"))
	case g.Mode == GatewayMultiCluster && IsRegionalClass(g.ClassName):
		errs = append(errs, field.Invalid(gp.Child("className"), g.ClassName,
			"is a regional class, which can program neither an imported pool nor an address per region (gateway.mode MultiCluster): use a multi-cluster class (-mc) or gateway.mode Regional"))
	}
	if g.Mode != "" && g.Mode != GatewayMultiCluster && g.Mode != GatewayRegional {
		errs = append(errs, field.NotSupported(gp.Child("mode"), g.Mode, []GatewayMode{GatewayMultiCluster, GatewayRegional}))
	}
	if g.EffectiveMode() == GatewayRegional && len(spec.Placement.Clusters) > 1 {
		errs = append(errs, field.Invalid(p.Child("placement", "clusters"), len(spec.Placement.Clusters),
			"a regional Gateway (gateway.mode Regional, or a regional gateway.className) serves the pool of one cluster: list exactly one cluster, or use gateway.mode MultiCluster with a -mc class"))
	}
	return errs
}

// RegionalClusters checks that a regional service selects exactly one cluster, once its
// clusterSelector has been resolved against the fleet.
func RegionalClusters(s *FleetInferenceService, selected []string) error {
	if s.Spec.Gateway.EffectiveMode() != GatewayRegional || len(selected) == 1 {
		return nil
	}
	if len(selected) == 0 {
		return field.Invalid(field.NewPath("spec", "placement"), "",
			"selects no registered cluster yet: a regional Gateway goes in the one member that holds the pool")
	}
	return field.Invalid(field.NewPath("spec", "placement"), strings.Join(selected, ","),
		fmt.Sprintf("a regional Gateway (class %s) serves the pool of one cluster, and the placement selects %d: select exactly one, or use gateway.mode MultiCluster with a -mc class", s.Spec.Gateway.ClassName, len(selected)))
}

func validateComputeClasses(spec *FleetInferenceServiceSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	used := map[string]bool{spec.Model.ComputeClass: true}
	for _, c := range spec.Placement.Clusters {
		if c.Overrides != nil && c.Overrides.ComputeClass != nil {
			used[*c.Overrides.ComputeClass] = true
		}
	}
	seen := map[string]bool{}
	for i, c := range spec.ComputeClasses {
		cp := p.Child("computeClasses").Index(i)
		errs = append(errs, listKey(cp.Child("name"), c.Name, labelKey, seen)...)
		if !used[c.Name] {
			errs = append(errs, field.Invalid(cp.Child("name"), c.Name, "is named by neither model.computeClass nor a placement.clusters[].overrides.computeClass (an unused class would be written nowhere)"))
		}
		if len(c.Priorities) == 0 {
			errs = append(errs, field.Required(cp.Child("priorities"), "at least one priority"))
		}
		for j, pr := range c.Priorities {
			pp := cp.Child("priorities").Index(j)
			if pr.GPU != nil && pr.TPU != nil {
				errs = append(errs, field.Invalid(pp, "gpu+tpu", "asks for a gpu or a tpu, not both"))
			}
			if len(pr.Nodepools) > 0 && (pr.MachineFamily != "" || pr.MachineType != "" || pr.GPU != nil || pr.TPU != nil) {
				errs = append(errs, field.Invalid(pp.Child("nodepools"), pr.Nodepools, "names existing node pools: it does not combine with machineFamily, machineType, gpu or tpu"))
			}
			if r := pr.Reservations; r != nil && r.Affinity == "Specific" && len(r.Specific) == 0 {
				errs = append(errs, field.Required(pp.Child("reservations", "specific"), "required with affinity Specific"))
			}
		}
	}
	return errs
}

// keyFormat is the format of a list's map key: a DNS-1123 label or subdomain.
type keyFormat struct {
	re   *regexp.Regexp
	max  int
	name string
}

var (
	labelKey     = keyFormat{dns1123Label, 63, "a DNS-1123 label"}
	subdomainKey = keyFormat{dnsSubdomain, 253, "a DNS-1123 subdomain"}
)

// listKey checks one entry's key in a list keyed by it (listType=map): its format, and that
// no earlier entry (recorded in seen) had it.
func listKey(p *field.Path, key string, f keyFormat, seen map[string]bool) field.ErrorList {
	var errs field.ErrorList
	if !f.re.MatchString(key) || len(key) > f.max {
		errs = append(errs, field.Invalid(p, key, "must be "+f.name))
	}
	if seen[key] {
		errs = append(errs, field.Duplicate(p, key))
	}
	seen[key] = true
	return errs
}
