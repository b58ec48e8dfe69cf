// Endpoint picker (EPP) objects of one member cluster.
//
// endpointPicker mirrors what the `inferencepool` Helm chart of
// sigs.k8s.io/gateway-api-inference-extension v1.5.0 (config/charts/inferencepool, with its
// library chart config/charts/epplib) renders for release name svc.Name, release namespace
// svc.Namespace and these values:
//
//	inferencePool.modelServers.matchLabels: {app: <svc.Name>}
//	inferencePool.targetPorts: [{number: <spec.model.server.port>}]
//	inferencePool.modelServerType: vllm, inferencePool.modelServerProtocol: http
//	inferenceExtension.image: <spec.endpointPicker.image> (taken whole)
//	inferenceExtension.replicas: <spec.endpointPicker.replicas>
//	inferenceExtension.failureMode: <spec.endpointPicker.failureMode>
//	provider.name: gke when spec.gateway.provider is GKE, else none
//	everything else: the chart's values.yaml defaults.
//
// Templates mirrored (everything the chart renders under those values except the
// InferencePool, InferenceObjectives and HTTPRoute, which other renderers own):
//
//   - inferencepool/templates/rbac.yaml: Role and RoleBinding <epp>-non-sa, then
//     epplib _rbac.yaml: Role and RoleBinding <epp>-sa and the ServiceAccount <epp>
//     (its ClusterRole/ClusterRoleBinding need monitoring.prometheus.enabled: off by default);
//   - epplib _leader-election-rbac.yaml: Role <epp>-leader-election and RoleBinding
//     <epp>-leader-election-binding, only when replicas > 1;
//   - epplib _config.yaml: ConfigMap <epp> with default-plugins.yaml (the sidecar and
//     latency-predictor ConfigMaps are off by default);
//   - epplib _deployment.yaml: Deployment <epp> (one "epp" container: the sidecar and the
//     latency-predictor containers are off by default);
//   - epplib _service.yaml: Service <epp>;
//   - inferencepool/templates/gke.yaml (provider gke only): HealthCheckPolicy and
//     GCPBackendPolicy <svc.Name> targeting the InferencePool. epplib _gke.yaml renders
//     nothing under the defaults (it needs monitoring.prometheus.enabled), nor do
//     _sa-token-secret.yaml and _servicemonitor.yaml; istio.yaml needs provider istio.
//
// <epp> is EndpointPickerName(svc), "<svc.Name>-epp", the chart's
// "gateway-api-inference-extension.name" (whose default/lower/trim change nothing for a
// valid name).
//
// Differences on purpose:
//   - every object also carries the hub's ownership labels (withLabels), including those
//     the chart leaves unlabelled (ConfigMap, RoleBindings); the Deployment's selector and
//     pod template labels are exactly the chart's, without ownership labels;
//   - app.kubernetes.io/version is "v1.5.0": the chart's source Chart.yaml says "0.0.0",
//     but the published chart is packaged with --app-version v1.5.0 (hack/push-chart.sh);
//   - the chart cuts the release name to 40 characters before adding "-epp"; we do not,
//     because the InferencePool's endpointPickerRef (member.go) names EndpointPickerName(svc)
//     and the two must agree. They differ from the chart only for names of 41 to 58
//     characters, whose "-epp" names (at most 62) are still valid DNS-1035 labels. To be
//     chart-exact there, truncate in EndpointPickerName, which both use;
//   - the Service's ports carry targetPort = port (the API server's default, which the
//     chart relies on): a typed ServicePort would otherwise send targetPort 0;
//   - inferenceExtension.failureMode only reaches the InferencePool (not rendered here), so
//     spec.endpointPicker.failureMode changes none of these objects.
//
// Objects come in a fixed order: ServiceAccount, RBAC, ConfigMap, Deployment, Service,
// then the GKE policies.

package render

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

const (
	// eppChartAppVersion is app.kubernetes.io/version: the published chart's appVersion.
	eppChartAppVersion = "v1.5.0"

	eppContainerName         = "epp"
	eppImagePullPolicy       = corev1.PullAlways // values.yaml inferenceExtension.image.pullPolicy
	eppExtProcPort     int32 = 9002              // values.yaml inferenceExtension.extProcPort
	eppHealthPort      int32 = 9003              // _deployment.yaml grpc-health
	eppMetricsPort     int32 = 9090              // _service.yaml metricsPort default
	// eppPluginsConfigFile is values.yaml inferenceExtension.pluginsConfigFile, a key of
	// the ConfigMap mounted at eppConfigMountPath.
	eppPluginsConfigFile = "default-plugins.yaml"
	eppConfigMountPath   = "/config"
	eppConfigVolume      = "plugins-config-volume"
	eppPoolGroup         = "inference.networking.k8s.io"
	eppTerminationGrace  = int64(130)

	// eppModeLabel is the chart's "modeLabels" key; eppModeInferencePool its value
	// when the chart renders an InferencePool (not standalone).
	eppModeLabel         = "inference.networking.k8s.io/igw-mode"
	eppModeInferencePool = "inferencepool"
	// eppSelectorLabel is the chart's "selectorLabels" key in inferencepool mode.
	eppSelectorLabel = "inferencepool"

	// eppHealthCheckPath is gke.yaml's HealthCheckPolicy requestPath (http protocol).
	eppHealthCheckPath = "/health"
	// eppBackendTimeoutSec is gke.yaml's GCPBackendPolicy timeoutSec.
	eppBackendTimeoutSec = int64(300)
)

// eppPluginsConfig is default-plugins.yaml as _config.yaml renders it for a vllm model
// server over http (no parser plugin), with the latency predictor off and the default
// metricsDataSource (scheme "http", path "/metrics", insecureSkipVerify true).
const eppPluginsConfig = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: metrics-data-source
  parameters:
    scheme: "http"
    path: "/metrics"
    insecureSkipVerify: true
- type: core-metrics-extractor
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
`

// endpointPicker returns the endpoint picker objects of svc (already defaulted) for a
// member cluster: what the inferencepool chart renders besides the InferencePool,
// InferenceObjectives and HTTPRoute. See the comment at the top of this file.
func endpointPicker(svc *v1alpha1.FleetInferenceService) []client.Object {
	name := EndpointPickerName(svc)
	ns := svc.Namespace
	replicas := svc.Spec.EndpointPicker.Replicas
	if replicas == 0 { // `.Values.inferenceExtension.replicas | default 1`
		replicas = 1
	}
	ha := replicas > 1 // `gt (.Values.inferenceExtension.replicas | int) 1`

	labels := func() map[string]string { return withLabels(svc, eppChartLabels(name)) }
	saSubject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}
	getWatchList := func() []string { return []string{"get", "watch", "list"} }

	objs := []client.Object{
		// epplib _rbac.yaml
		&corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels()},
		},
		// inferencepool/templates/rbac.yaml
		eppRole(name+"-non-sa", ns, labels(), []rbacv1.PolicyRule{
			{APIGroups: []string{"inference.networking.x-k8s.io"}, Resources: []string{"inferenceobjectives", "inferencemodelrewrites"}, Verbs: getWatchList()},
			{APIGroups: []string{eppPoolGroup}, Resources: []string{"inferencepools"}, Verbs: getWatchList()},
		}),
		// The chart gives the RoleBindings no labels: ours carry only the ownership labels.
		eppRoleBinding(name+"-non-sa", ns, withLabels(svc, nil), name+"-non-sa", saSubject),
		// epplib _rbac.yaml
		eppRole(name+"-sa", ns, labels(), []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: getWatchList()},
		}),
		eppRoleBinding(name+"-sa", ns, withLabels(svc, nil), name+"-sa", saSubject),
	}
	if ha {
		// epplib _leader-election-rbac.yaml. Its subject has no namespace, as in the
		// chart: a RoleBinding's ServiceAccount subject defaults to the binding's namespace.
		objs = append(objs,
			eppRole(name+"-leader-election", ns, labels(), []rbacv1.PolicyRule{
				{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
				{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			}),
			eppRoleBinding(name+"-leader-election-binding", ns, withLabels(svc, nil), name+"-leader-election",
				rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name}),
		)
	}
	objs = append(objs,
		// epplib _config.yaml: no labels in the chart.
		&corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: withLabels(svc, nil)},
			Data:       map[string]string{eppPluginsConfigFile: eppPluginsConfig},
		},
		eppDeployment(svc, name, replicas, ha),
		eppService(svc, name),
	)
	if svc.Spec.Gateway.Provider == v1alpha1.ProviderGKE {
		objs = append(objs, eppGKEPolicies(svc, name)...)
	}
	return objs
}

// eppChartLabels are the chart's "gateway-api-inference-extension.labels".
func eppChartLabels(name string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":    name,
		"app.kubernetes.io/version": eppChartAppVersion,
	}
}

// eppSelectorLabels are the chart's "gateway-api-inference-extension.selectorLabels" in
// inferencepool mode: the Deployment's selector and the Service's.
func eppSelectorLabels(name string) map[string]string {
	return map[string]string{eppSelectorLabel: name}
}

func eppRole(name, ns string, labels map[string]string, rules []rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Rules:      rules,
	}
}

func eppRoleBinding(name, ns string, labels map[string]string, role string, subject rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Subjects:   []rbacv1.Subject{subject},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
	}
}

// eppDeployment is epplib _deployment.yaml.
func eppDeployment(svc *v1alpha1.FleetInferenceService, name string, replicas int32, ha bool) *appsv1.Deployment {
	args := []string{
		"--pool-name", svc.Name,
		"--pool-namespace", svc.Namespace,
		"--pool-group", eppPoolGroup,
		// modelServerType vllm: no legacy metric flags.
		"--zap-encoder", "json",
		"--config-file", eppConfigMountPath + "/" + eppPluginsConfigFile,
	}
	if ha {
		args = append(args, "--ha-enable-leader-election")
	}
	args = append(args,
		"--v", "1", // values.yaml inferenceExtension.flags (a single key, so no ordering question)
		"--tracing=false",
		// monitoring.prometheus.auth.enabled is true: no --metrics-endpoint-auth=false.
	)

	liveness, readiness := "inference-extension", "inference-extension"
	if ha {
		liveness, readiness = "liveness", "readiness"
	}

	podLabels := eppSelectorLabels(name)
	podLabels[eppModeLabel] = eppModeInferencePool
	depLabels := eppChartLabels(name)
	depLabels[eppModeLabel] = eppModeInferencePool

	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: svc.Namespace, Labels: withLabels(svc, depLabels)},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Selector: &metav1.LabelSelector{MatchLabels: eppSelectorLabels(name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					ServiceAccountName:            name,
					TerminationGracePeriodSeconds: ptr.To(eppTerminationGrace),
					Containers: []corev1.Container{{
						Name:            eppContainerName,
						Image:           svc.Spec.EndpointPicker.Image,
						ImagePullPolicy: eppImagePullPolicy,
						Args:            args,
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{
								corev1.ResourceCPU:    resource.MustParse("4"),
								corev1.ResourceMemory: resource.MustParse("8Gi"),
							},
							Limits: corev1.ResourceList{
								corev1.ResourceMemory: resource.MustParse("16Gi"),
							},
						},
						Ports: []corev1.ContainerPort{
							{Name: "grpc", ContainerPort: eppExtProcPort},
							{Name: "grpc-health", ContainerPort: eppHealthPort},
							{Name: "metrics", ContainerPort: eppMetricsPort},
						},
						LivenessProbe: &corev1.Probe{
							ProbeHandler:        corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: eppHealthPort, Service: ptr.To(liveness)}},
							InitialDelaySeconds: 5,
							PeriodSeconds:       10,
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: eppHealthPort, Service: ptr.To(readiness)}},
							PeriodSeconds: 2,
						},
						Env: []corev1.EnvVar{
							{Name: "NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: eppConfigVolume, MountPath: eppConfigMountPath}},
					}},
					Volumes: []corev1.Volume{{
						Name: eppConfigVolume,
						VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: name},
						}},
					}},
				},
			},
		},
	}
}

// eppService is epplib _service.yaml. The chart sets no appProtocol on its ports, nor
// targetPort: we set targetPort to the port, as the API server defaults it, because the
// typed ServicePort would otherwise send targetPort 0 (IntOrString is not omitted when zero).
func eppService(svc *v1alpha1.FleetInferenceService, name string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: svc.Namespace, Labels: withLabels(svc, eppChartLabels(name))},
		Spec: corev1.ServiceSpec{
			Selector: eppSelectorLabels(name),
			Ports: []corev1.ServicePort{
				{Name: "grpc-ext-proc", Protocol: corev1.ProtocolTCP, Port: eppExtProcPort, TargetPort: intstr.FromInt32(eppExtProcPort)},
				{Name: "http-metrics", Protocol: corev1.ProtocolTCP, Port: eppMetricsPort, TargetPort: intstr.FromInt32(eppMetricsPort)},
			},
			Type: corev1.ServiceTypeClusterIP,
		},
	}
}

// eppGKEPolicies is inferencepool/templates/gke.yaml for an http model server: a
// HealthCheckPolicy probing targetPorts[0] (the server port) at /health and a
// GCPBackendPolicy with a 300s timeout and logging, both named after and targeting the
// InferencePool (the release name, not truncated).
func eppGKEPolicies(svc *v1alpha1.FleetInferenceService, name string) []client.Object {
	targetRef := func() map[string]interface{} {
		return map[string]interface{}{
			"group": GVKInferencePool.Group,
			"kind":  GVKInferencePool.Kind,
			"name":  svc.Name,
		}
	}
	hcp := &unstructured.Unstructured{Object: map[string]interface{}{
		"spec": map[string]interface{}{
			"targetRef": targetRef(),
			"default": map[string]interface{}{
				"timeoutSec":       int64(2),
				"checkIntervalSec": int64(2),
				"config": map[string]interface{}{
					"type": "HTTP",
					"httpHealthCheck": map[string]interface{}{
						"requestPath": eppHealthCheckPath,
						"port":        int64(svc.Spec.Model.Server.Port),
					},
				},
			},
		},
	}}
	bp := &unstructured.Unstructured{Object: map[string]interface{}{
		"spec": map[string]interface{}{
			"targetRef": targetRef(),
			"default": map[string]interface{}{
				"timeoutSec": eppBackendTimeoutSec,
				"logging":    map[string]interface{}{"enabled": true},
			},
		},
	}}
	hcp.SetGroupVersionKind(GVKHealthCheckPolicy)
	bp.SetGroupVersionKind(GVKGCPBackendPolicy)
	for _, u := range []*unstructured.Unstructured{hcp, bp} {
		u.SetName(svc.Name)
		u.SetNamespace(svc.Namespace)
		u.SetLabels(withLabels(svc, eppChartLabels(name)))
	}
	return []client.Object{hcp, bp}
}
