package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/config"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/fleet"
)

// What `fleetctl cluster join` creates in a member: the hub's identity there, bound to
// exactly config/rbac/member-role.yaml.
const (
	joinNamespace      = fleet.RegistrationNamespace
	joinServiceAccount = "inferfleet-hub"
	joinBinding        = "inferfleet-hub"
	// joinedByLabel marks the objects join created in a member, which unjoin --cleanup
	// removes.
	joinedByLabel = "fleet.inferfleet.dev/joined-by"
	// joinSource is the source label of registrations that join writes.
	joinSource = "fleetctl"
	// AnnotationTokenExpires on a registration join wrote says when its token expires.
	annotationTokenExpires = "fleet.inferfleet.dev/token-expires"
	fieldManager           = "fleetctl"
)

func newClusterCmd(kf *kubeFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Join, unjoin, cordon and uncordon member clusters",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newJoinCmd(kf), newUnjoinCmd(kf), newCordonCmd(kf, true), newCordonCmd(kf, false))
	return cmd
}

// memberFlags reach a member cluster with the user's own credentials.
type memberFlags struct{ kubeconfig, context string }

func (m *memberFlags) bind(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&m.kubeconfig, "cluster-kubeconfig", "", "kubeconfig of the member cluster (default $KUBECONFIG, then ~/.kube/config)")
	cmd.Flags().StringVar(&m.context, "cluster-context", "", "kubeconfig context of the member cluster, "+what)
}

func (m *memberFlags) set() bool { return m.context != "" || m.kubeconfig != "" }

// config is the member's REST config, and a name for it in errors.
func (m *memberFlags) config() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = m.kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: m.context})
	where := fmt.Sprintf("context %q", m.context)
	if m.kubeconfig != "" {
		where += " in " + m.kubeconfig
	}
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, where, fmt.Errorf("member kubeconfig (%s): %w", where, err)
	}
	return cfg, where + " (server " + cfg.Host + ")", nil
}

type joinOptions struct {
	name, region, namespace, server string
	labels                          map[string]string
	tokenTTL, wait                  time.Duration
	member                          memberFlags
}

func newJoinCmd(kf *kubeFlags) *cobra.Command {
	o := joinOptions{}
	cmd := &cobra.Command{
		Use:   "join NAME --cluster-context CONTEXT [--region REGION]",
		Short: "Make a cluster a member: give the hub its own identity there and register it",
		Long: `join makes the cluster of --cluster-context a member named NAME. With your credentials
for that cluster it creates the hub's identity there: the ServiceAccount
inferfleet-system/inferfleet-hub, bound to the ClusterRole inferfleet-member (exactly
config/rbac/member-role.yaml), and a token for it that expires after --token-ttl. It
then writes the member's registration on the hub (a kubeconfig Secret in
--cluster-namespace, with the region and labels) and waits until the hub reports it
reachable. Nothing is left behind when a step fails: an unreachable or unauthorized
cluster or hub fails before anything is written, and a later failure undoes what was
written. Joining a cluster again renews its token.`,
		Example: `  fleetctl cluster join gke-west --cluster-context gke_proj_europe-west3_west --region europe-west3
  fleetctl cluster join edge-1 --cluster-kubeconfig edge.kubeconfig --labels tier=gpu --token-ttl 720h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name = args[0]
			return runJoin(cmd.Context(), cmd.OutOrStdout(), kf, o)
		},
	}
	o.member.bind(cmd, "the cluster to join (default: the current context)")
	cmd.Flags().StringVar(&o.region, "region", "", "the member's region (label "+fleet.RegionLabel+")")
	cmd.Flags().StringToStringVar(&o.labels, "labels", nil, "labels of the member, that placement selects on (k=v,...)")
	cmd.Flags().StringVar(&o.namespace, "cluster-namespace", fleet.RegistrationNamespace, "namespace of the registration Secrets on the hub")
	cmd.Flags().StringVar(&o.server, "cluster-server", "", "the member's API server address as the hub reaches it (default: the context's)")
	cmd.Flags().DurationVar(&o.tokenTTL, "token-ttl", 365*24*time.Hour, "lifetime of the hub's token in the member; join again to renew it")
	cmd.Flags().DurationVar(&o.wait, "wait", 2*time.Minute, "how long to wait for the hub to reach the member")
	return cmd
}

// allowed asks a cluster's authorizer whether the caller may do each of attrs, and names
// the first that is denied.
func allowed(ctx context.Context, c client.Client, attrs ...authzv1.ResourceAttributes) error {
	for _, a := range attrs {
		r := &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &a}}
		if err := c.Create(ctx, r); err != nil {
			return err
		}
		if !r.Status.Allowed {
			res := a.Resource
			if a.Subresource != "" {
				res += "/" + a.Subresource
			}
			if a.Group != "" {
				res += "." + a.Group
			}
			return fmt.Errorf("not allowed to %s %s%s", a.Verb, res, map[bool]string{true: " in " + a.Namespace}[a.Namespace != ""])
		}
	}
	return nil
}

func runJoin(ctx context.Context, out io.Writer, kf *kubeFlags, o joinOptions) error {
	if errs := validationName(o.name); errs != "" {
		return fmt.Errorf("cluster name %q: %s", o.name, errs)
	}
	// The hub first: reachable, and the caller may write registrations.
	hub, err := kf.client()
	if err != nil {
		return err
	}
	if err := allowed(ctx, hub,
		authzv1.ResourceAttributes{Verb: "create", Resource: "secrets", Namespace: o.namespace},
		authzv1.ResourceAttributes{Verb: "update", Resource: "secrets", Namespace: o.namespace}); err != nil {
		return fmt.Errorf("hub: %w", kf.hubError(err))
	}
	existing := &corev1.Secret{}
	switch err := hub.Get(ctx, client.ObjectKey{Namespace: o.namespace, Name: o.name}, existing); {
	case apierrors.IsNotFound(err):
		existing = nil
	case err != nil:
		return fmt.Errorf("hub: %w", kf.hubError(err))
	case existing.Labels[fleet.SourceLabel] != joinSource:
		return fmt.Errorf("member %q is already registered on the hub (Secret %s/%s, not written by join): choose another name, or delete that Secret first",
			o.name, o.namespace, o.name)
	}

	// Then the member, with the caller's credentials: reachable, and they may create the
	// hub's identity.
	cfg, where, err := o.member.config()
	if err != nil {
		return err
	}
	member, err := client.New(cfg, client.Options{Scheme: app.Scheme()})
	if err != nil {
		return fmt.Errorf("member %s (%s): %w", o.name, where, explain(err))
	}
	if err := allowed(ctx, member,
		authzv1.ResourceAttributes{Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: joinNamespace, Name: joinServiceAccount},
		authzv1.ResourceAttributes{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
		authzv1.ResourceAttributes{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}); err != nil {
		return fmt.Errorf("member %s (%s): %w", o.name, where, explain(err))
	}
	server := o.server
	if server == "" {
		server = cfg.Host
	}
	ca, err := caData(cfg)
	if err != nil {
		return fmt.Errorf("member %s (%s): %w", o.name, where, err)
	}

	// Past this point a failure undoes what was written.
	created, err := createIdentity(ctx, member)
	undo := func(cause error) error {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		var errs []error
		if existing == nil {
			reg := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: o.namespace, Name: o.name}}
			errs = append(errs, client.IgnoreNotFound(hub.Delete(uctx, reg)))
		}
		if created {
			_, derr := removeIdentity(uctx, member)
			errs = append(errs, derr)
		}
		if uerr := errors.Join(errs...); uerr != nil {
			return fmt.Errorf("%w; undoing the join failed too: %v", cause, uerr)
		}
		return cause
	}
	if err != nil {
		return undo(fmt.Errorf("member %s (%s): %w", o.name, where, err))
	}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptrInt64(int64(o.tokenTTL.Seconds()))}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: joinNamespace, Name: joinServiceAccount}}
	if err := member.SubResource("token").Create(ctx, sa, tr); err != nil {
		return undo(fmt.Errorf("member %s (%s): token for %s/%s: %w", o.name, where, joinNamespace, joinServiceAccount, err))
	}
	kubeconfig, err := clientcmd.Write(memberKubeconfig(o.name, server, ca, cfg.Insecure, tr.Status.Token))
	if err != nil {
		return undo(err)
	}
	// The token must work where the caller is before the hub is told of it.
	hubCfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return undo(err)
	}
	asHub, err := client.New(hubCfg, client.Options{Scheme: app.Scheme()})
	if err == nil {
		err = allowed(ctx, asHub, authzv1.ResourceAttributes{Verb: "patch", Group: "apps", Resource: "deployments"})
	}
	if err != nil {
		return undo(fmt.Errorf("member %s (%s): the hub's new identity: %w", o.name, server, err))
	}

	// A hub that has no registration yet may lack their namespace.
	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.namespace}}); err != nil && !apierrors.IsAlreadyExists(err) && !apierrors.IsForbidden(err) {
		return undo(fmt.Errorf("hub: namespace %s: %w", o.namespace, kf.hubError(err)))
	}
	reg := fleet.RegistrationSecret(o.name, o.namespace, o.region, kubeconfig, o.labels)
	reg.Labels[fleet.SourceLabel] = joinSource
	reg.Annotations = map[string]string{annotationTokenExpires: tr.Status.ExpirationTimestamp.UTC().Format(time.RFC3339)}
	if existing != nil {
		// A renewal: the hub's view of reachability and the cordon stay.
		for k, v := range existing.Annotations {
			if _, ok := reg.Annotations[k]; !ok {
				reg.Annotations[k] = v
			}
		}
		reg.ResourceVersion = existing.ResourceVersion
		err = hub.Update(ctx, reg)
	} else {
		err = hub.Create(ctx, reg)
	}
	if err != nil {
		return undo(fmt.Errorf("hub: registration %s/%s: %w", o.namespace, o.name, kf.hubError(err)))
	}
	fmt.Fprintf(out, "cluster %s: the hub's identity created (token expires %s), registered on the hub\n", o.name, tr.Status.ExpirationTimestamp.UTC().Format(time.RFC3339))
	if o.wait <= 0 {
		return nil
	}
	if err := waitReachable(ctx, hub, reg, o.wait); err != nil {
		return undo(fmt.Errorf("cluster %s: %w", o.name, err))
	}
	fmt.Fprintf(out, "cluster %s joined: the hub reaches it\n", o.name)
	return nil
}

// waitReachable waits until the hub's health monitor says it reaches the member: it
// publishes reachability on the registration Secret.
func waitReachable(ctx context.Context, hub client.Client, reg *corev1.Secret, timeout time.Duration) error {
	var last *corev1.Secret
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		s := &corev1.Secret{}
		if err := hub.Get(ctx, client.ObjectKeyFromObject(reg), s); err != nil {
			return false, nil
		}
		last = s
		switch s.Annotations[fleet.AnnotationReachable] {
		case "true":
			return true, nil
		case "false":
			return false, fmt.Errorf("the hub cannot reach it: %s", s.Annotations[fleet.AnnotationReachReason])
		}
		return false, nil
	})
	if err != nil && wait.Interrupted(err) {
		if last != nil && last.Annotations[fleet.AnnotationReachable] == "false" {
			return fmt.Errorf("the hub cannot reach it: %s", last.Annotations[fleet.AnnotationReachReason])
		}
		return fmt.Errorf("the hub did not report it reachable within %s: is the hub running, and watching %s?", timeout, reg.Namespace)
	}
	return err
}

// createIdentity applies the hub's identity in a member: its namespace, ServiceAccount,
// the member ClusterRole and the binding. It reports whether it wrote anything (to undo).
func createIdentity(ctx context.Context, c client.Client) (bool, error) {
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(config.MemberRole, role); err != nil {
		return false, fmt.Errorf("member role: %w", err)
	}
	labels := map[string]string{joinedByLabel: joinSource}
	objs := []client.Object{
		&corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: joinNamespace, Labels: labels}},
		&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Namespace: joinNamespace, Name: joinServiceAccount, Labels: labels}},
		&rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: role.Name, Labels: labels}, Rules: role.Rules},
		&rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: joinBinding, Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: joinNamespace, Name: joinServiceAccount}}},
	}
	wrote := false
	for _, obj := range objs {
		// A namespace someone else made is used as it is.
		if ns, ok := obj.(*corev1.Namespace); ok {
			if err := c.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{}); err == nil {
				continue
			}
		}
		u, err := toApply(obj)
		if err != nil {
			return wrote, err
		}
		if err := c.Apply(ctx, u, client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
			return wrote, fmt.Errorf("apply %s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
		}
		wrote = true
	}
	return wrote, nil
}

// removeIdentity deletes what createIdentity made (only objects carrying its label).
func removeIdentity(ctx context.Context, c client.Client) ([]string, error) {
	var deleted []string
	objs := []client.Object{
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: joinBinding}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "inferfleet-member"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: joinNamespace, Name: joinServiceAccount}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: joinNamespace}},
	}
	for _, obj := range objs {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return deleted, err
		}
		if obj.GetLabels()[joinedByLabel] != joinSource || obj.GetDeletionTimestamp() != nil {
			continue
		}
		if err := c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			return deleted, err
		}
		gvk, _ := c.GroupVersionKindFor(obj)
		deleted = append(deleted, gvk.Kind+"/"+obj.GetName())
	}
	return deleted, nil
}

// memberKubeconfig is the kubeconfig the hub uses for a joined member.
func memberKubeconfig(name, server string, ca []byte, insecure bool, token string) clientcmdapi.Config {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca, InsecureSkipTLSVerify: insecure && len(ca) == 0}
	kc.AuthInfos[joinServiceAccount] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: joinServiceAccount}
	kc.CurrentContext = name
	return *kc
}

// caData is the CA bundle a REST config trusts, read from its file if it names one.
func caData(cfg *rest.Config) ([]byte, error) {
	if len(cfg.CAData) > 0 || cfg.CAFile == "" {
		return cfg.CAData, nil
	}
	b, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("certificate authority: %w", err)
	}
	return b, nil
}

// explain says in words what an authentication or authorization refusal means; other
// errors are returned as they are.
func explain(err error) error {
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the cluster refused the credentials (401 Unauthorized): %w", err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("the credentials are not allowed to (403 Forbidden): %w", err)
	}
	return err
}

func ptrInt64(v int64) *int64 { return &v }

// validationName checks a member name as the registration Secret's name: a DNS-1123
// subdomain.
func validationName(name string) string {
	if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" || name == "" || len(name) > 253 ||
		strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") {
		return "must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	}
	return ""
}

type unjoinOptions struct {
	name, namespace string
	cleanup         bool
	member          memberFlags
}

func newUnjoinCmd(kf *kubeFlags) *cobra.Command {
	o := unjoinOptions{}
	cmd := &cobra.Command{
		Use:   "unjoin NAME [--cleanup]",
		Short: "Remove a member: delete its registration, and with --cleanup everything the hub owns there",
		Long: `unjoin deletes the member's registration from the hub: the hub stops managing it and
moves its services' shares to the other members. With --cleanup it then deletes from
the member every object the hub wrote there, the namespaces the hub created that are
left empty of its objects, and the identity join created. The cleanup uses
--cluster-context when given, else the registration's own credentials (then the hub's
identity itself, which only join's credentials may delete, stays).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name = args[0]
			return runUnjoin(cmd.Context(), cmd.OutOrStdout(), kf, o)
		},
	}
	o.member.bind(cmd, "for --cleanup")
	cmd.Flags().BoolVar(&o.cleanup, "cleanup", false, "also delete every object of the hub's in the member")
	cmd.Flags().StringVar(&o.namespace, "cluster-namespace", fleet.RegistrationNamespace, "namespace of the registration Secrets on the hub")
	return cmd
}

func runUnjoin(ctx context.Context, out io.Writer, kf *kubeFlags, o unjoinOptions) error {
	hub, err := kf.client()
	if err != nil {
		return err
	}
	reg, err := registration(ctx, kf, hub, o.namespace, o.name)
	if err != nil {
		return err
	}
	if src := reg.Labels[fleet.SourceLabel]; src != "" && src != joinSource {
		return fmt.Errorf("member %q comes from the %s source, which would register it again: remove it there", o.name, src)
	}
	var member client.Client
	where := "its registration's credentials"
	if o.cleanup {
		var cfg *rest.Config
		if o.member.set() {
			if cfg, where, err = o.member.config(); err != nil {
				return err
			}
		} else if cfg, err = clientcmd.RESTConfigFromKubeConfig(reg.Data[fleet.KubeconfigKey]); err != nil {
			return fmt.Errorf("member %s: the registration's kubeconfig: %w", o.name, err)
		}
		if member, err = client.New(cfg, client.Options{Scheme: app.Scheme()}); err != nil {
			return err
		}
	}
	if err := hub.Delete(ctx, reg, client.Preconditions{UID: &reg.UID}); err != nil && !apierrors.IsNotFound(err) {
		return kf.hubError(err)
	}
	fmt.Fprintf(out, "cluster %s: registration deleted; the hub no longer manages it\n", o.name)
	if !o.cleanup {
		return nil
	}
	// The hub may finish a sync it had started: clean until a pass finds nothing.
	var all []string
	err = wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		deleted, err := controllers.CleanMember(ctx, member)
		all = append(all, deleted...)
		return len(deleted) == 0, err
	})
	if err != nil {
		return fmt.Errorf("member %s (%s): cleanup: %w", o.name, where, err)
	}
	if o.member.set() {
		ids, err := removeIdentity(ctx, member)
		if err != nil {
			return fmt.Errorf("member %s (%s): removing the hub's identity: %w", o.name, where, err)
		}
		all = append(all, ids...)
	}
	fmt.Fprintf(out, "cluster %s: cleaned up, %d objects deleted\n", o.name, len(all))
	for _, d := range all {
		fmt.Fprintf(out, "  deleted %s\n", d)
	}
	return nil
}

// registration is a member's registration Secret on the hub.
func registration(ctx context.Context, kf *kubeFlags, hub client.Client, namespace, name string) (*corev1.Secret, error) {
	reg := &corev1.Secret{}
	if err := hub.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, reg); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("member %q is not registered on the hub (no Secret %s/%s)", name, namespace, name)
		}
		return nil, kf.hubError(err)
	}
	if !fleet.IsRegistration(reg.Labels) {
		return nil, fmt.Errorf("Secret %s/%s is not a member registration", namespace, name)
	}
	return reg, nil
}

func newCordonCmd(kf *kubeFlags, cordon bool) *cobra.Command {
	var (
		reason, namespace string
	)
	use, short := "uncordon NAME", "Put a cordoned member back into placement"
	if cordon {
		use, short = "cordon NAME [--reason TEXT]", "Take a member out of every service's placement, as a failover would, until uncordon"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

The cordon is the member's registration annotation ` + fleet.AnnotationCordoned + `,
whose value says who cordoned it and why; ` + "`fleetctl clusters`" + ` shows it. Services
move the member's share to the others (placement reason Cordoned); the objects in the
member stay.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hub, err := kf.client()
			if err != nil {
				return err
			}
			name := args[0]
			reg, err := registration(cmd.Context(), kf, hub, namespace, name)
			if err != nil {
				return err
			}
			var value any // null removes the annotation
			if cordon {
				if reason == "" {
					reason = "cordoned with fleetctl at " + time.Now().UTC().Format(time.RFC3339)
				}
				value = reason
			}
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{fleet.AnnotationCordoned: value}}})
			if err != nil {
				return err
			}
			if err := hub.Patch(cmd.Context(), reg, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return kf.hubError(err)
			}
			if cordon {
				fmt.Fprintf(cmd.OutOrStdout(), "cluster %s cordoned: %s\n", name, reason)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "cluster %s uncordoned\n", name)
			}
			return nil
		},
	}
	if cordon {
		cmd.Flags().StringVar(&reason, "reason", "", "who cordons the member and why (shown by fleetctl clusters)")
	}
	cmd.Flags().StringVar(&namespace, "cluster-namespace", fleet.RegistrationNamespace, "namespace of the registration Secrets on the hub")
	return cmd
}

// toApply is obj as a server-side apply configuration.
func toApply(obj client.Object) (runtime.ApplyConfiguration, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return client.ApplyConfigurationFromUnstructured(u), nil
}
