package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Defaults applied by the API server through the CRD's default markers, repeated here so
// that offline rendering (fleetctl render) sees the same object the hub would.
// TestDefaultsMatchAPIServer keeps the two in step.
const (
	DefaultImage                  = "vllm/vllm-openai:latest"
	DefaultPort             int32 = 8000
	DefaultTokenKey               = "token"
	DefaultGatewayName            = "cross-region-gateway"
	DefaultGKEGatewayClass        = "gke-l7-cross-regional-internal-managed-mc"
	DefaultGKERegionalClass       = "gke-l7-regional-external-managed"
	// DefaultStartupTimeout is the startup budget of GKE's vLLM example (600 probes a second
	// apart): time to download an 8B model from Hugging Face and load it.
	DefaultStartupTimeout       = 10 * time.Minute
	DefaultGatewayPort    int32 = 80
	DefaultPathPrefix           = "/v1"
	DefaultHealthPath           = "/health"
	DefaultTimeoutSeconds int32 = 100
	DefaultCustomMetric         = "kv-cache"
	DefaultMaxUtilization int32 = 60
	DefaultEPPImage             = "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"
	DefaultUnhealthyAfter       = 30 * time.Second
	DefaultFailbackAfter        = 2 * time.Minute
	DefaultSpillAfter           = 2 * time.Minute
	DefaultScaleUpTimeout       = 15 * time.Minute
)

// SetDefaults fills every unset field with the value the API server (or, where a default
// depends on another field, the hub) uses. It is idempotent.
func SetDefaults(s *FleetInferenceService) {
	spec := &s.Spec
	srv := &spec.Model.Server
	if srv.Image == "" {
		srv.Image = DefaultImage
	}
	if srv.Port == 0 {
		srv.Port = DefaultPort
	}
	if ref := srv.HuggingFaceTokenSecretRef; ref != nil && ref.Key == "" {
		ref.Key = DefaultTokenKey
	}
	defaultAccelerator(spec.Model.Accelerator)
	for i := range spec.Model.FallbackAccelerators {
		defaultAccelerator(&spec.Model.FallbackAccelerators[i])
	}
	if a := spec.Autoscaling; a != nil && a.MinReplicas == nil {
		one := int32(1)
		a.MinReplicas = &one
	}
	for i := range spec.Placement.Clusters {
		c := &spec.Placement.Clusters[i]
		if c.Weight == nil {
			one := int32(1)
			c.Weight = &one
		}
		if c.Overrides != nil {
			defaultAccelerator(c.Overrides.Accelerator)
		}
	}
	f := &spec.Placement.Failover
	if f.Policy == "" {
		f.Policy = FailoverRedistribute
	}
	if f.UnhealthyAfter == nil {
		f.UnhealthyAfter = &metav1.Duration{Duration: DefaultUnhealthyAfter}
	}
	if f.FailbackAfter == nil {
		f.FailbackAfter = &metav1.Duration{Duration: DefaultFailbackAfter}
	}
	so := &spec.Placement.Spillover
	if so.Policy == "" {
		so.Policy = SpilloverSpill
	}
	if so.After == nil {
		so.After = &metav1.Duration{Duration: DefaultSpillAfter}
	}
	if so.ScaleUpTimeout == nil {
		so.ScaleUpTimeout = &metav1.Duration{Duration: DefaultScaleUpTimeout}
	}

	g := &spec.Gateway
	if g.Provider == "" {
		g.Provider = ProviderGKE
	}
	if g.Name == "" {
		g.Name = DefaultGatewayName
	}
	if g.ClassName == "" && g.Provider == ProviderGKE {
		g.ClassName = DefaultGKEGatewayClass
		if g.Mode == GatewayRegional {
			g.ClassName = DefaultGKERegionalClass
		}
	}
	if g.Port == 0 {
		g.Port = DefaultGatewayPort
	}
	if g.PathPrefix == "" {
		g.PathPrefix = DefaultPathPrefix
	}
	if g.HealthCheck.Path == "" {
		g.HealthCheck.Path = DefaultHealthPath
	}
	if g.HealthCheck.Port == 0 {
		g.HealthCheck.Port = srv.Port
	}
	if g.TimeoutSeconds == 0 {
		g.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if g.Logging != nil && g.Logging.SampleRate == nil {
		one := 1.0
		g.Logging.SampleRate = &one
	}

	b := &spec.Balancing
	if b.Mode == "" {
		b.Mode = BalancingCustomMetrics
	}
	if b.TrafficDuration == "" {
		b.TrafficDuration = TrafficDurationLong
	}
	if b.Mode == BalancingCustomMetrics {
		if b.CustomMetric == nil {
			b.CustomMetric = &CustomMetricSpec{}
		}
		if b.CustomMetric.Name == "" {
			b.CustomMetric.Name = DefaultCustomMetric
		}
		if b.CustomMetric.MaxUtilization == 0 {
			b.CustomMetric.MaxUtilization = DefaultMaxUtilization
		}
	}

	e := &spec.EndpointPicker
	if e.Image == "" {
		e.Image = DefaultEPPImage
	}
	if e.Replicas == 0 {
		e.Replicas = 1
	}
	if e.FailureMode == "" {
		e.FailureMode = FailOpen
	}
	if spec.DeletionPolicy == "" {
		spec.DeletionPolicy = DeletionDelete
	}
}

func defaultAccelerator(a *AcceleratorSpec) {
	if a != nil && a.Count == 0 {
		a.Count = 1
	}
}
