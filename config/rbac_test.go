package config_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// The roles of config/rbac, as documented objects.
const (
	hubClusterRole = "ClusterRole inferfleet-hub"
	hubRole        = "Role " + fleet.RegistrationNamespace + "/inferfleet-hub"
	memberRole     = "ClusterRole inferfleet-member"
)

// writes are the verbs of a kind the hub writes (docs/security.md says so once per side).
var writes = []string{"get", "list", "watch", "create", "update", "patch", "delete"}

// statusVerbs are the verbs of a status or finalizers subresource the hub writes.
var statusVerbs = []string{"get", "update", "patch"}

// documentedRule is a rule docs/security.md states, with the words that state it.
type documentedRule struct {
	role      string
	groups    []string
	resources []string // or non-resource URLs, with groups nil
	verbs     []string
	says      []string
}

// documentedRules are every permission docs/security.md gives the hub: in the config
// cluster (role.yaml) and in a member (member-role.yaml).
var documentedRules = []documentedRule{
	{hubClusterRole, []string{"fleet.inferfleet.dev"}, []string{"fleetinferenceservices", "failoverdrills"}, []string{"get", "list", "watch", "update", "patch"},
		[]string{"FleetInferenceServices and FailoverDrills (and their status and finalizers): the API it serves, which it reads and updates but never creates or deletes."}},
	{hubClusterRole, []string{"fleet.inferfleet.dev"}, []string{"fleetinferenceservices/status", "fleetinferenceservices/finalizers", "failoverdrills/status", "failoverdrills/finalizers"}, statusVerbs,
		[]string{"FleetInferenceServices and FailoverDrills (and their status and finalizers)"}},
	{hubClusterRole, []string{""}, []string{"secrets"}, []string{"get", "list", "watch", "patch"},
		[]string{"Secrets: `get`, `list`, `watch` and `patch` cluster-wide."}},
	{hubRole, []string{""}, []string{"secrets"}, []string{"create", "delete"},
		[]string{"Secrets in `inferfleet-system` only: `create` and `delete` (a Role and RoleBinding in that namespace)."}},
	{hubClusterRole, []string{"authentication.k8s.io"}, []string{"tokenreviews"}, []string{"create"},
		[]string{"TokenReviews and SubjectAccessReviews: `create`, to decide who may read `/metrics`."}},
	{hubClusterRole, []string{"authorization.k8s.io"}, []string{"subjectaccessreviews"}, []string{"create"},
		[]string{"TokenReviews and SubjectAccessReviews: `create`"}},
	{hubClusterRole, []string{"multicluster.x-k8s.io"}, []string{"clusterprofiles"}, []string{"get", "list", "watch"},
		[]string{"ClusterProfiles (`multicluster.x-k8s.io`): `get`, `list` and `watch`, read only"}},
	{hubClusterRole, []string{"gateway.networking.k8s.io"}, []string{"gateways", "httproutes"}, writes,
		[]string{"Gateways, HTTPRoutes, HealthCheckPolicies, GCPBackendPolicies and InferencePoolImports (and the imports' status)",
			"A kind it writes comes with `get`, `list`, `watch`, `create`, `update`, `patch` and `delete`"}},
	{hubClusterRole, []string{"networking.gke.io"}, []string{"healthcheckpolicies", "gcpbackendpolicies"}, writes,
		[]string{"Gateways, HTTPRoutes, HealthCheckPolicies, GCPBackendPolicies and InferencePoolImports"}},
	{hubClusterRole, []string{"inference.networking.x-k8s.io"}, []string{"inferencepoolimports"}, writes,
		[]string{"GCPBackendPolicies and InferencePoolImports (and the imports' status)"}},
	{hubClusterRole, []string{"inference.networking.x-k8s.io"}, []string{"inferencepoolimports/status"}, statusVerbs,
		[]string{"InferencePoolImports (and the imports' status)"}},
	{hubClusterRole, []string{""}, []string{"serviceaccounts", "services"}, writes,
		[]string{"ServiceAccounts, Services, Deployments, Roles, RoleBindings and GCPRoutingExtensions: the body-based router"}},
	{hubClusterRole, []string{"apps"}, []string{"deployments"}, writes,
		[]string{"ServiceAccounts, Services, Deployments, Roles, RoleBindings and GCPRoutingExtensions"}},
	{hubClusterRole, []string{"rbac.authorization.k8s.io"}, []string{"roles", "rolebindings"}, writes,
		[]string{"ServiceAccounts, Services, Deployments, Roles, RoleBindings and GCPRoutingExtensions"}},
	{hubClusterRole, []string{"networking.gke.io"}, []string{"gcproutingextensions"}, writes,
		[]string{"ServiceAccounts, Services, Deployments, Roles, RoleBindings and GCPRoutingExtensions"}},
	{hubClusterRole, []string{""}, []string{"configmaps"}, []string{"get", "list", "watch"},
		[]string{"`get`, `list` and `watch` on ConfigMaps only so that the hub may grant the router's Role"}},
	{hubClusterRole, []string{"", "events.k8s.io"}, []string{"events"}, []string{"create", "patch"},
		[]string{"Events (`create` and `patch`)"}},
	{hubClusterRole, []string{"coordination.k8s.io"}, []string{"leases"}, writes,
		[]string{"Leases (leader election)"}},

	{memberRole, []string{""}, []string{"namespaces"}, []string{"get", "list", "watch", "create", "patch", "delete"},
		[]string{"the service's namespace where it is missing (`get`, `list` and `watch`; created and then applied with server-side apply, so `create` and `patch`, no `update`; `delete` once nothing of the hub's is left in it"}},
	{memberRole, []string{""}, []string{"secrets", "configmaps", "services", "serviceaccounts"}, writes,
		[]string{"listing exactly the kinds the hub writes, each with `get`, `list`, `watch`, `create`, `update`, `patch` and `delete`",
			"the model server Deployment and ConfigMaps, the copied token Secret, the endpoint picker's ServiceAccount, Roles, RoleBindings, Deployment and Service",
			"Secrets included"}},
	{memberRole, []string{"apps"}, []string{"deployments"}, writes,
		[]string{"the model server Deployment"}},
	{memberRole, []string{"rbac.authorization.k8s.io"}, []string{"roles", "rolebindings"}, writes,
		[]string{"the endpoint picker's ServiceAccount, Roles, RoleBindings", "the role has no `escalate` or `bind` at all"}},
	{memberRole, []string{"inference.networking.k8s.io"}, []string{"inferencepools"}, writes,
		[]string{"InferencePools and their status"}},
	{memberRole, []string{"inference.networking.k8s.io"}, []string{"inferencepools/status"}, statusVerbs,
		[]string{"InferencePools and their status"}},
	{memberRole, []string{"inference.networking.x-k8s.io"}, []string{"inferenceobjectives"}, writes,
		[]string{"InferenceObjectives"}},
	{memberRole, []string{"autoscaling.gke.io"}, []string{"autoscalingmetrics"}, writes,
		[]string{"the GKE AutoscalingMetric and policies"}},
	{memberRole, []string{"networking.gke.io"}, []string{"healthcheckpolicies", "gcpbackendpolicies"}, writes,
		[]string{"the GKE AutoscalingMetric and policies"}},
	{memberRole, []string{"gateway.networking.k8s.io"}, []string{"gateways", "httproutes"}, writes,
		[]string{"a regional Gateway, its HTTPRoutes and the body-based router's GCPRoutingExtension"}},
	{memberRole, []string{"networking.gke.io"}, []string{"gcproutingextensions"}, writes,
		[]string{"the body-based router's GCPRoutingExtension"}},
	{memberRole, []string{"cloud.google.com"}, []string{"computeclasses"}, writes,
		[]string{"the ComputeClasses a service brings, which are cluster-scoped"}},
	{memberRole, []string{"rbac.authorization.k8s.io"}, []string{"clusterroles", "clusterrolebindings"}, writes,
		[]string{"ClusterRoles and ClusterRoleBindings that grant `create` on TokenReviews and SubjectAccessReviews and `get` on `/metrics`"}},
	{memberRole, []string{"authentication.k8s.io"}, []string{"tokenreviews"}, []string{"create"},
		[]string{"The member role holds those three permissions itself, so that it may grant them without `escalate` or `bind` on cluster RBAC."}},
	{memberRole, []string{"authorization.k8s.io"}, []string{"subjectaccessreviews"}, []string{"create"},
		[]string{"The member role holds those three permissions itself"}},
	{memberRole, nil, []string{"/metrics"}, []string{"get"},
		[]string{"The member role holds those three permissions itself"}},
	{memberRole, []string{"monitoring.googleapis.com"}, []string{"podmonitorings"}, writes,
		[]string{"and a PodMonitoring)"}},
	{memberRole, []string{""}, []string{"pods"}, []string{"get", "list", "watch"},
		[]string{"It also grants `get` and `list` on Pods, to find a service's model servers (for the reads below) and those that cannot be scheduled",
			"So too for what the endpoint picker's Roles grant and the hub does not write: `watch` on Pods"}},
	{memberRole, []string{"inference.networking.x-k8s.io"}, []string{"inferencemodelrewrites"}, []string{"get", "list", "watch"},
		[]string{"`get`, `list` and `watch` on InferenceModelRewrites"}},
	{memberRole, []string{"coordination.k8s.io"}, []string{"leases"}, writes,
		[]string{"InferenceModelRewrites, Leases, and `create` and `patch` on Events"}},
	{memberRole, []string{"", "events.k8s.io"}, []string{"events"}, []string{"create", "patch"},
		[]string{"Leases, and `create` and `patch` on Events"}},
	{memberRole, []string{""}, []string{"events"}, []string{"list"},
		[]string{"It also grants `list` on Events"}},
	{memberRole, []string{""}, []string{"pods/proxy"}, []string{"get"},
		[]string{"The member role also grants `get` on `pods/proxy`"}},
	{memberRole, []string{"autoscaling"}, []string{"horizontalpodautoscalers"}, []string{"get", "list"},
		[]string{"The member role grants `get` and `list` on HorizontalPodAutoscalers"}},
	{memberRole, []string{"inference.networking.x-k8s.io"}, []string{"inferencepoolimports"}, []string{"list"},
		[]string{"`list` on InferencePoolImports: beside a regional Gateway the hub prunes the kinds a service may own where its Gateway is"}},
}

// permission is one verb on one resource (resource.group, as kubectl names them) or
// non-resource URL that a role holds.
type permission struct{ role, resource, verb string }

func (p permission) String() string { return fmt.Sprintf("%s: %s %s", p.role, p.verb, p.resource) }

func permissions(role string, groups, resources, verbs []string) []permission {
	var out []permission
	for _, r := range resources {
		for _, v := range verbs {
			if groups == nil {
				out = append(out, permission{role, r, v})
			}
			for _, g := range groups {
				name := r
				if g != "" {
					name += "." + g
				}
				out = append(out, permission{role, name, v})
			}
		}
	}
	return out
}

// rbacObjects decodes the documents of a file under config/rbac.
func rbacObjects(t *testing.T, file string) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	docs := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := docs.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, u)
	}
}

// TestRolesGrantWhatSecurityDocStates compares the roles of config/rbac rule by rule with
// what docs/security.md says they grant: every permission of role.yaml and member-role.yaml
// is one the document states in the words given here, and every stated one is granted.
// The bindings give role.yaml's roles to the hub's ServiceAccount only.
func TestRolesGrantWhatSecurityDocStates(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.Root(), "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	space := regexp.MustCompile(`\s+`)
	text := space.ReplaceAllString(string(doc), " ")

	want := sets.New[permission]()
	for _, r := range documentedRules {
		want.Insert(permissions(r.role, r.groups, r.resources, r.verbs)...)
		for _, s := range r.says {
			if !strings.Contains(text, s) {
				t.Errorf("docs/security.md no longer says %q, which states %s %v on %v", s, r.role, r.verbs, r.resources)
			}
		}
	}
	got := sets.New[permission]()
	for _, f := range []string{"role.yaml", "member-role.yaml"} {
		for _, u := range rbacObjects(t, f) {
			role := u.GetKind() + " " + u.GetName()
			if u.GetNamespace() != "" {
				role = u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
			}
			var r rbacv1.ClusterRole
			if err := runtimeConvert(u, &r); err != nil {
				t.Fatalf("%s %s: %v", f, role, err)
			}
			for _, rule := range r.Rules {
				if len(rule.ResourceNames) > 0 {
					t.Errorf("%s: a rule narrowed to names %v, which this test does not compare", role, rule.ResourceNames)
				}
				groups := rule.APIGroups
				resources := rule.Resources
				if len(rule.NonResourceURLs) > 0 {
					groups, resources = nil, rule.NonResourceURLs
				}
				got.Insert(permissions(role, groups, resources, rule.Verbs)...)
			}
		}
	}
	for _, p := range sortedPermissions(got.Difference(want)) {
		t.Errorf("config/rbac grants %s, which docs/security.md does not state", p)
	}
	for _, p := range sortedPermissions(want.Difference(got)) {
		t.Errorf("docs/security.md states %s, which config/rbac does not grant", p)
	}

	// The bindings: role.yaml's two roles, to the hub's ServiceAccount and nobody else.
	var bindings []string
	for _, u := range rbacObjects(t, "role_binding.yaml") {
		var b rbacv1.RoleBinding
		if err := runtimeConvert(u, &b); err != nil {
			t.Fatal(err)
		}
		where := u.GetName()
		if u.GetNamespace() != "" {
			where = u.GetNamespace() + "/" + where
		}
		for _, s := range b.Subjects {
			bindings = append(bindings, fmt.Sprintf("%s %s -> %s %s: %s %s/%s", u.GetKind(), where, b.RoleRef.Kind, b.RoleRef.Name, s.Kind, s.Namespace, s.Name))
		}
	}
	sa := "ServiceAccount " + fleet.RegistrationNamespace + "/inferfleet-hub"
	wantBindings := []string{
		"ClusterRoleBinding inferfleet-hub -> ClusterRole inferfleet-hub: " + sa,
		"RoleBinding " + fleet.RegistrationNamespace + "/inferfleet-hub -> Role inferfleet-hub: " + sa,
	}
	if !slices.Equal(bindings, wantBindings) {
		t.Errorf("role_binding.yaml binds\n%s\nwant\n%s", strings.Join(bindings, "\n"), strings.Join(wantBindings, "\n"))
	}
}

func runtimeConvert(u *unstructured.Unstructured, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into)
}

func sortedPermissions(s sets.Set[permission]) []permission {
	out := s.UnsortedList()
	slices.SortFunc(out, func(a, b permission) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// TestRolesDenyWhatSecurityDocWithholds installs config/rbac on a real API server, binds
// member-role.yaml to a user as a member would, and asks the API server's authorizer, as
// the hub's ServiceAccount and as that user, about what docs/security.md says the hub may
// and may not do; then tries the escalations the roles must not allow: neither identity
// may grant, through a Role or binding, more than it holds.
func TestRolesDenyWhatSecurityDocWithholds(t *testing.T) {
	env := testenv.Start(t, nil)
	ctx := context.Background()
	admin := env.Client
	const ns, memberUser = "team-a", "inferfleet-member"
	for _, n := range []string{fleet.RegistrationNamespace, ns} {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	hubUser := ""
	for _, f := range []string{"role.yaml", "role_binding.yaml", "member-role.yaml"} {
		for _, u := range rbacObjects(t, f) {
			if err := admin.Create(ctx, u); err != nil {
				t.Fatalf("install %s %s: %v", u.GetKind(), u.GetName(), err)
			}
			if u.GetKind() == "ClusterRoleBinding" {
				var b rbacv1.ClusterRoleBinding
				if err := runtimeConvert(u, &b); err != nil {
					t.Fatal(err)
				}
				hubUser = "system:serviceaccount:" + b.Subjects[0].Namespace + ":" + b.Subjects[0].Name
			}
		}
	}
	if err := admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: memberUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "inferfleet-member"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: memberUser}},
	}); err != nil {
		t.Fatal(err)
	}
	as := func(user string) client.Client {
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
		c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	hub, member := as(hubUser), as(memberUser)

	type access struct {
		verb, group, resource, subresource, namespace string
	}
	allowed := func(c client.Client, a access) bool {
		t.Helper()
		r := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace},
		}}
		if err := c.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r.Status.Allowed
	}
	// The authorizer answers from caches of the roles and bindings just written.
	deadline := time.Now().Add(30 * time.Second)
	for !allowed(hub, access{"create", "", "secrets", "", fleet.RegistrationNamespace}) || !allowed(member, access{"list", "", "pods", "", ns}) {
		if time.Now().After(deadline) {
			t.Fatal("the authorizer has not seen config/rbac within 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, tc := range []struct {
		who   string
		c     client.Client
		a     access
		allow bool
		why   string
	}{
		{"hub", hub, access{"create", "", "secrets", "", fleet.RegistrationNamespace}, true, "discovery registers clusters"},
		{"hub", hub, access{"create", "", "secrets", "", ns}, false, "never creates a Secret anywhere else"},
		{"hub", hub, access{"delete", "", "secrets", "", ns}, false, "never deletes a Secret anywhere else"},
		{"hub", hub, access{"update", "", "secrets", "", fleet.RegistrationNamespace}, false, "Secrets: get, list, watch and patch"},
		{"hub", hub, access{"create", "fleet.inferfleet.dev", "fleetinferenceservices", "", ns}, false, "never creates a service"},
		{"hub", hub, access{"delete", "fleet.inferfleet.dev", "fleetinferenceservices", "", ns}, false, "never deletes a service"},
		{"hub", hub, access{"create", "", "configmaps", "", ns}, false, "ConfigMaps: get, list and watch only"},
		{"hub", hub, access{"create", "", "pods", "", ns}, false, "no pods"},
		{"hub", hub, access{"create", "", "namespaces", "", ""}, false, "no namespaces written"},
		{"hub", hub, access{"create", "rbac.authorization.k8s.io", "clusterroles", "", ""}, false, "no cluster RBAC"},
		{"hub", hub, access{"escalate", "rbac.authorization.k8s.io", "roles", "", ns}, false, "grants only what it holds"},
		{"hub", hub, access{"bind", "rbac.authorization.k8s.io", "roles", "", ns}, false, "grants only what it holds"},

		{"member", member, access{"get", "", "secrets", "", "kube-system"}, true, "every object of a kind it writes, Secrets included"},
		{"member", member, access{"watch", "", "pods", "", ns}, true, "held to grant the endpoint picker's Role"},
		{"member", member, access{"create", "", "pods", "", ns}, false, "no pods written"},
		{"member", member, access{"delete", "", "pods", "", ns}, false, "no pods written"},
		{"member", member, access{"create", "", "pods", "exec", ns}, false, "no pods/exec"},
		{"member", member, access{"create", "", "serviceaccounts", "token", ns}, false, "no tokens minted"},
		{"member", member, access{"get", "", "nodes", "", ""}, false, "no nodes"},
		{"member", member, access{"update", "", "namespaces", "", ""}, false, "namespaces: no update"},
		{"member", member, access{"create", "inference.networking.x-k8s.io", "inferencepoolimports", "", ns}, false, "never writes an InferencePoolImport in a member"},
		{"member", member, access{"escalate", "rbac.authorization.k8s.io", "roles", "", ns}, false, "no escalate at all"},
		{"member", member, access{"bind", "rbac.authorization.k8s.io", "rolebindings", "", ns}, false, "no bind at all"},
		{"member", member, access{"escalate", "rbac.authorization.k8s.io", "clusterroles", "", ""}, false, "no escalate on cluster RBAC"},
		{"member", member, access{"bind", "rbac.authorization.k8s.io", "clusterroles", "", ""}, false, "no bind on cluster RBAC"},
	} {
		if got := allowed(tc.c, tc.a); got != tc.allow {
			what := tc.a.resource
			if tc.a.subresource != "" {
				what += "/" + tc.a.subresource
			}
			if tc.a.group != "" {
				what += "." + tc.a.group
			}
			t.Errorf("%s may %s %s in namespace %q: %v, want %v (%s)", tc.who, tc.a.verb, what, tc.a.namespace, got, tc.allow, tc.why)
		}
	}

	// RBAC lets a subject without escalate or bind write a Role or binding only for what it
	// holds: the endpoint picker's Role and metrics reader's ClusterRole go through, anything
	// more does not.
	role := func(name string, rules ...rbacv1.PolicyRule) *rbacv1.Role {
		return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules}
	}
	clusterRole := func(name string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
		return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	}
	rule := func(group, resource string, verbs ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{resource}, Verbs: verbs}
	}
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: ns}}
	clusterRef := func(name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}
	}
	// roleBinding binds a ClusterRole in ns; clusterRoleBinding everywhere.
	roleBinding := func(name, clusterRole string) client.Object {
		return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, RoleRef: clusterRef(clusterRole), Subjects: subjects}
	}
	clusterRoleBinding := func(name, clusterRole string) client.Object {
		return &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: clusterRef(clusterRole), Subjects: subjects}
	}
	metricsReader := rbacv1.PolicyRule{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}
	for _, tc := range []struct {
		who   string
		c     client.Client
		obj   client.Object
		allow bool
	}{
		{"hub", hub, role("router-configmap-reader", rule("", "configmaps", "get", "list", "watch")), true},
		{"hub", hub, role("secret-writer", rule("", "secrets", "create")), false},
		{"hub", hub, roleBinding("hub-cluster-admin", "cluster-admin"), false},
		{"member", member, role("picker-sa", rule("", "pods", "get", "watch", "list")), true},
		{"member", member, role("picker-leader-election", rule("coordination.k8s.io", "leases", "get", "list", "watch", "create", "update", "patch", "delete"), rule("", "events", "create", "patch")), true},
		{"member", member, clusterRole("picker-metrics", rule("authentication.k8s.io", "tokenreviews", "create"), rule("authorization.k8s.io", "subjectaccessreviews", "create"), metricsReader), true},
		{"member", member, clusterRoleBinding("picker-metrics", "picker-metrics"), true},
		{"member", member, role("pod-exec", rule("", "pods/exec", "create")), false},
		{"member", member, clusterRole("node-reader", rule("", "nodes", "get")), false},
		{"member", member, clusterRoleBinding("member-cluster-admin", "cluster-admin"), false},
		{"member", member, roleBinding("member-cluster-admin", "cluster-admin"), false},
	} {
		err := tc.c.Create(ctx, tc.obj)
		if tc.allow {
			// RBAC checks a binding against the roles it has cached: the ClusterRole just
			// written may not be there yet.
			for i := 0; i < 10 && apierrors.IsForbidden(err); i++ {
				time.Sleep(200 * time.Millisecond)
				err = tc.c.Create(ctx, tc.obj)
			}
		}
		switch {
		case tc.allow && err != nil:
			t.Errorf("%s writing %T %s: %v, want it allowed", tc.who, tc.obj, tc.obj.GetName(), err)
		case !tc.allow && !apierrors.IsForbidden(err):
			t.Errorf("%s writing %T %s: %v, want it forbidden", tc.who, tc.obj, tc.obj.GetName(), err)
		}
	}
}
