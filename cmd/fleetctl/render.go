package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/fleet"
)

type renderOptions struct {
	file, clusters, configCluster, output string
}

func newRenderCmd() *cobra.Command {
	var o renderOptions
	cmd := &cobra.Command{
		Use:   "render -f FIS.yaml --clusters CLUSTERS.yaml",
		Short: "Print what the hub would apply to each cluster, without contacting any",
		Long: `render prints exactly the objects the hub would apply for the FleetInferenceServices in
-f, per cluster, offline. CLUSTERS.yaml lists the fleet's clusters as {name, region,
labels}. Secrets in -f stand in for the hub's token Secrets; a token Secret that is not
there is rendered with a placeholder value.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRender(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVarP(&o.file, "filename", "f", "", "FleetInferenceService YAML (- for stdin)")
	cmd.Flags().StringVar(&o.clusters, "clusters", "", "YAML list of clusters: [{name, region, labels}]")
	cmd.Flags().StringVar(&o.configCluster, "config-cluster", "", "name of the config cluster, whose Gateway objects are rendered too")
	cmd.Flags().StringVarP(&o.output, "output", "o", "yaml", "yaml (a --- stream with a '# cluster: NAME' comment per cluster) or json ({cluster: [objects]})")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagRequired("clusters")
	return cmd
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

// decodeServices reads FleetInferenceServices and Secrets from a YAML stream.
func decodeServices(raw []byte) ([]*v1alpha1.FleetInferenceService, map[string]*corev1.Secret, error) {
	var svcs []*v1alpha1.FleetInferenceService
	secrets := map[string]*corev1.Secret{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		var meta struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		switch {
		case meta.Kind == "" && len(bytes.TrimSpace(doc)) == 0:
		case meta.Kind == "FleetInferenceService" && meta.APIVersion == v1alpha1.GroupVersion.String():
			svc := &v1alpha1.FleetInferenceService{}
			if err := yaml.UnmarshalStrict(doc, svc); err != nil {
				return nil, nil, fmt.Errorf("document %d: %w", i+1, err)
			}
			if svc.Namespace == "" {
				svc.Namespace = "default"
			}
			svcs = append(svcs, svc)
		case meta.Kind == "Secret" && meta.APIVersion == "v1":
			s := &corev1.Secret{}
			if err := yaml.Unmarshal(doc, s); err != nil {
				return nil, nil, fmt.Errorf("document %d: %w", i+1, err)
			}
			for k, v := range s.StringData {
				if s.Data == nil {
					s.Data = map[string][]byte{}
				}
				s.Data[k] = []byte(v)
			}
			if s.Namespace == "" {
				s.Namespace = "default"
			}
			secrets[s.Namespace+"/"+s.Name] = s
		default:
			return nil, nil, fmt.Errorf("document %d: %s %s is neither a FleetInferenceService nor a Secret", i+1, meta.APIVersion, meta.Kind)
		}
	}
	if len(svcs) == 0 {
		return nil, nil, errors.New("no FleetInferenceService found")
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
	raw, err := readInput(o.file)
	if err != nil {
		return err
	}
	svcs, secrets, err := decodeServices(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", o.file, err)
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
	perCluster, order, err := renderFleet(svcs, secrets, clusters, o.configCluster)
	if err != nil {
		return err
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
