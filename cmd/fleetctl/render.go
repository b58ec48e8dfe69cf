package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/cli-runtime/pkg/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/fleet"
)

type renderOptions struct {
	files                                    resource.FilenameOptions
	clusters, configCluster, output, cluster string
	// namespace is given to objects in -f that name none.
	namespace string
}

func newRenderCmd(kf *kubeFlags) *cobra.Command {
	var o renderOptions
	cmd := &cobra.Command{
		Use:   "render -f FILE|DIR [-R] --clusters CLUSTERS.yaml [--cluster NAME]",
		Short: "Print what the hub would apply to each cluster, without contacting any",
		Long: `render prints exactly the objects the hub would apply for the FleetInferenceServices in
-f, per cluster, offline. -f takes files, directories (their .yaml, .yml and .json files;
-R descends into subdirectories), URLs or - for stdin, as kubectl does, or -k a kustomization.
CLUSTERS.yaml lists the fleet's clusters as {name, region, labels}. Secrets in -f stand
in for the hub's token Secrets; a token Secret that is not there is rendered with a
placeholder value. Objects without a namespace are in -n (default: the kubeconfig
context's namespace, else default).

With --cluster NAME, render prints that one cluster's objects as a kubectl List, to pipe
into kubectl apply -f - or kubectl diff -f - against that cluster.`,
		Example: `  fleetctl render -f config/samples/ --clusters clusters.yaml
  fleetctl render -f fis.yaml --clusters clusters.yaml --cluster gke-west | kubectl --context gke-west diff -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, err := kf.namespace()
			if err != nil {
				return err
			}
			o.namespace = ns
			return runRender(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringSliceVarP(&o.files.Filenames, "filename", "f", nil, "files, directories or URLs of FleetInferenceServices (and token Secrets); - for stdin")
	cmd.Flags().BoolVarP(&o.files.Recursive, "recursive", "R", false, "descend into the subdirectories of -f directories")
	cmd.Flags().StringVarP(&o.files.Kustomize, "kustomize", "k", "", "a kustomization directory to build and render")
	cmd.Flags().StringVar(&o.clusters, "clusters", "", "YAML list of clusters: [{name, region, labels}]")
	cmd.Flags().StringVar(&o.configCluster, "config-cluster", "", "name of the config cluster, whose Gateway objects are rendered too")
	cmd.Flags().StringVar(&o.cluster, "cluster", "", "print only this cluster's objects, as a kubectl List")
	cmd.Flags().StringVarP(&o.output, "output", "o", "yaml", "yaml (a --- stream with a '# cluster: NAME' comment per cluster; a List with --cluster) or json ({cluster: [objects]}; a List with --cluster)")
	_ = cmd.MarkFlagRequired("clusters")
	return cmd
}

// readServices reads the FleetInferenceServices and Secrets of -f/-k with cli-runtime's
// resource builder (files, directories, -R, URLs, stdin, kustomizations), offline. Each
// error names the file, and an unknown field its path.
func readServices(files *resource.FilenameOptions, namespace string) ([]*v1alpha1.FleetInferenceService, map[string]*corev1.Secret, error) {
	if err := files.RequireFilenameOrKustomize(); err != nil {
		return nil, nil, err
	}
	infos, err := resource.NewLocalBuilder().Unstructured().FilenameParam(false, files).Flatten().Do().Infos()
	if err != nil {
		return nil, nil, err
	}
	var svcs []*v1alpha1.FleetInferenceService
	secrets := map[string]*corev1.Secret{}
	for _, info := range infos {
		u, ok := info.Object.(*unstructured.Unstructured)
		if !ok {
			return nil, nil, fmt.Errorf("%s: unexpected object %T", info.Source, info.Object)
		}
		if u.GetNamespace() == "" {
			u.SetNamespace(namespace)
		}
		gvk := u.GroupVersionKind()
		what := fmt.Sprintf("%s: %s %s/%s", info.Source, gvk.Kind, u.GetNamespace(), u.GetName())
		switch {
		case gvk == v1alpha1.GroupVersion.WithKind("FleetInferenceService"):
			svc := &v1alpha1.FleetInferenceService{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, svc, true); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", what, err)
			}
			svcs = append(svcs, svc)
		case gvk == corev1.SchemeGroupVersion.WithKind("Secret"):
			s := &corev1.Secret{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, s, true); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", what, err)
			}
			for k, v := range s.StringData {
				if s.Data == nil {
					s.Data = map[string][]byte{}
				}
				s.Data[k] = []byte(v)
			}
			secrets[s.Namespace+"/"+s.Name] = s
		default:
			return nil, nil, fmt.Errorf("%s: %s is neither a FleetInferenceService (%s) nor a Secret (v1)", what, gvk.GroupVersion(), v1alpha1.GroupVersion)
		}
	}
	if len(svcs) == 0 {
		return nil, nil, fmt.Errorf("no FleetInferenceService found in %s", strings.Join(append(files.Filenames, files.Kustomize), " "))
	}
	return svcs, secrets, nil
}

// renderFleet returns each cluster's objects, and the clusters in output order. With a
// config cluster named, its Gateways, routes and policies come first in its list; a
// regional Gateway and its routes come after its member's objects.
func renderFleet(svcs []*v1alpha1.FleetInferenceService, secrets map[string]*corev1.Secret, clusters []fleet.Cluster, configCluster string) (map[string][]client.Object, []string, error) {
	var order []string
	for _, c := range clusters {
		order = append(order, c.Name)
	}
	tokens := map[string]*corev1.Secret{}
	for _, svc := range svcs {
		v1alpha1.SetDefaults(svc)
		if err := svc.Validate(); err != nil {
			return nil, nil, fmt.Errorf("%s/%s: %w", svc.Namespace, svc.Name, err)
		}
		if ref := svc.Spec.Model.Server.HuggingFaceTokenSecretRef; ref != nil {
			token := secrets[svc.Namespace+"/"+ref.Name]
			if token == nil {
				token = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.LabelCopyToMembers: "true"}},
					Data: map[string][]byte{ref.Key: []byte(fmt.Sprintf("<copied from the hub's Secret %s/%s>", svc.Namespace, ref.Name))}}
			}
			tokens[svc.Namespace+"/"+svc.Name] = token
		}
	}
	out, err := render.Fleet(svcs, tokens, clusters)
	if err != nil {
		return nil, nil, err
	}
	cfg := out[render.ConfigClusterKey]
	delete(out, render.ConfigClusterKey)
	if configCluster != "" {
		out[configCluster] = append(cfg, out[configCluster]...)
	}
	return out, order, nil
}

func runRender(w io.Writer, o renderOptions) error {
	if o.output != "yaml" && o.output != "json" {
		return fmt.Errorf("-o must be yaml or json, not %q", o.output)
	}
	if o.namespace == "" {
		o.namespace = metav1.NamespaceDefault
	}
	svcs, secrets, err := readServices(&o.files, o.namespace)
	if err != nil {
		return err
	}
	craw, err := os.ReadFile(o.clusters)
	if err != nil {
		return err
	}
	var clusters []fleet.Cluster
	if err := yaml.UnmarshalStrict(craw, &clusters); err != nil {
		return fmt.Errorf("%s: %w", o.clusters, err)
	}
	seen := map[string]bool{}
	for i, c := range clusters {
		if c.Name == "" || seen[c.Name] {
			return fmt.Errorf("%s: cluster %d has an empty or repeated name %q", o.clusters, i, c.Name)
		}
		seen[c.Name] = true
		if clusters[i].Labels == nil {
			clusters[i].Labels = map[string]string{}
		}
		if c.Region != "" {
			clusters[i].Labels[fleet.RegionLabel] = c.Region
		}
	}
	if o.configCluster != "" && !seen[o.configCluster] {
		return fmt.Errorf("--config-cluster %q is not in %s", o.configCluster, o.clusters)
	}
	if o.cluster != "" && !seen[o.cluster] {
		return fmt.Errorf("--cluster %q is not in %s", o.cluster, o.clusters)
	}
	perCluster, order, err := renderFleet(svcs, secrets, clusters, o.configCluster)
	if err != nil {
		return err
	}
	if o.cluster != "" {
		return printClusterList(w, perCluster[o.cluster], o.output)
	}
	if o.output == "json" {
		doc := map[string][]client.Object{}
		for _, name := range order {
			if objs := perCluster[name]; len(objs) > 0 {
				doc[name] = objs
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	first := true
	for _, name := range order {
		objs := perCluster[name]
		if len(objs) == 0 {
			continue
		}
		b, err := render.YAML(objs)
		if err != nil {
			return err
		}
		if !first {
			fmt.Fprintln(w, "---")
		}
		first = false
		fmt.Fprintf(w, "# cluster: %s\n", name)
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// printClusterList prints one cluster's objects as a kubectl List.
func printClusterList(w io.Writer, objs []client.Object, output string) error {
	items := make([]runtime.Object, len(objs))
	for i, o := range objs {
		items[i] = o
	}
	var p printers.ResourcePrinter = &printers.YAMLPrinter{}
	if output == "json" {
		p = &printers.JSONPrinter{}
	}
	return p.PrintObj(asList(items), w)
}
