package v1alpha1

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
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
		p := spec.Child("objectives").Index(i).Child("name")
		if !dnsSubdomain.MatchString(o.Name) || len(o.Name) > 253 {
			errs = append(errs, field.Invalid(p, o.Name, "must be a DNS-1123 subdomain"))
		}
		if names[o.Name] {
			errs = append(errs, field.Duplicate(p, o.Name))
		}
		names[o.Name] = true
	}
	if s.Spec.Replicas < 0 {
		errs = append(errs, field.Invalid(spec.Child("replicas"), s.Spec.Replicas, "must not be negative"))
	}
	errs = append(errs, validatePlacement(&s.Spec.Placement, spec.Child("placement"))...)
	errs = append(errs, validateGateway(&s.Spec.Gateway, spec.Child("gateway"))...)
	errs = append(errs, validateBalancing(&s.Spec.Balancing, spec.Child("balancing"))...)
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
		if !dnsSubdomain.MatchString(l.ID) {
			errs = append(errs, field.Invalid(ip.Child("id"), l.ID, "must be a DNS-1123 subdomain"))
		}
		if ids[l.ID] {
			errs = append(errs, field.Duplicate(ip.Child("id"), l.ID))
		}
		ids[l.ID] = true
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

func validatePlacement(pl *PlacementSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if (len(pl.Clusters) > 0) == (pl.ClusterSelector != nil) {
		errs = append(errs, field.Invalid(p, "", "needs exactly one of clusters and clusterSelector"))
	}
	seen := map[string]bool{}
	for i, c := range pl.Clusters {
		cp := p.Child("clusters").Index(i)
		if !dns1123Label.MatchString(c.Name) || len(c.Name) > 63 {
			errs = append(errs, field.Invalid(cp.Child("name"), c.Name, "must be a DNS-1123 label"))
		}
		if seen[c.Name] {
			errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
		}
		seen[c.Name] = true
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
