package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
)

// kubeFlags are kubectl's global flags, as k8s.io/cli-runtime binds them: --kubeconfig,
// --context, -n, --as, --request-timeout, --server, --token and the rest. --kubeconfig also
// takes a path list, merged as kubectl merges $KUBECONFIG. --cluster is left out: in
// fleetctl it names a member cluster.
type kubeFlags struct {
	*genericclioptions.ConfigFlags
}

func newKubeFlags() *kubeFlags {
	cf := genericclioptions.NewConfigFlags(true)
	cf.ClusterName = nil
	return &kubeFlags{ConfigFlags: cf}
}

func (f *kubeFlags) addFlags(fs *pflag.FlagSet) {
	f.ConfigFlags.AddFlags(fs)
	fs.Lookup("kubeconfig").Usage = "kubeconfig of the hub: a file, or a path list merged like $KUBECONFIG (default $KUBECONFIG, then ~/.kube/config)"
}

// resolvePathList makes a --kubeconfig path list the $KUBECONFIG of this process, which
// client-go merges as kubectl does (the first file to set a value wins, missing files are
// skipped); a single path stays explicit and must exist.
func (f *kubeFlags) resolvePathList() {
	if f.KubeConfig == nil || !strings.ContainsRune(*f.KubeConfig, filepath.ListSeparator) {
		return
	}
	os.Setenv("KUBECONFIG", *f.KubeConfig)
	*f.KubeConfig = ""
}

// restConfig is the hub's REST config.
func (f *kubeFlags) restConfig() (*rest.Config, error) {
	f.resolvePathList()
	cfg, err := f.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("hub kubeconfig: %w", err)
	}
	return cfg, nil
}

// client is a client of the hub with the fleet's scheme; it can watch.
func (f *kubeFlags) client() (client.WithWatch, error) {
	cfg, err := f.restConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: app.Scheme()})
	if err != nil {
		return nil, fmt.Errorf("hub client (%s): %w", f.where(), err)
	}
	return c, nil
}

// namespace is -n, else the namespace of the kubeconfig's context, else default.
func (f *kubeFlags) namespace() (string, error) {
	f.resolvePathList()
	ns, _, err := f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("hub kubeconfig: %w", err)
	}
	return ns, nil
}

// where names the hub as the user chose it: context, server and the kubeconfig file the
// context comes from.
func (f *kubeFlags) where() string {
	f.resolvePathList()
	loader := f.ToRawKubeConfigLoader()
	raw, err := loader.RawConfig()
	if err != nil {
		return "kubeconfig: " + err.Error()
	}
	name := raw.CurrentContext
	if f.Context != nil && *f.Context != "" {
		name = *f.Context
	}
	parts := []string{fmt.Sprintf("context %q", name)}
	if cfg, err := loader.ClientConfig(); err == nil {
		parts = append(parts, "server "+cfg.Host)
	}
	if ctx := raw.Contexts[name]; ctx != nil && ctx.LocationOfOrigin != "" {
		parts = append(parts, "kubeconfig "+ctx.LocationOfOrigin)
	}
	return strings.Join(parts, ", ")
}

// hubError names the hub in errors that are not the API server's answer (it could not be
// reached, or TLS failed), so the user sees which context and file were used.
func (f *kubeFlags) hubError(err error) error {
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return err
	}
	return fmt.Errorf("cannot reach the hub (%s): %w", f.where(), err)
}

// printFlags are kubectl's -o: json, yaml, name, jsonpath, go-template (and their file
// forms) from cli-runtime, plus the human table (default) and wide.
type printFlags struct {
	*genericclioptions.PrintFlags
}

func newPrintFlags() *printFlags {
	return &printFlags{genericclioptions.NewPrintFlags("").WithTypeSetter(app.Scheme())}
}

func (p *printFlags) addFlags(cmd *cobra.Command, table string) {
	p.PrintFlags.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = fmt.Sprintf("Output format: %s (default), wide, or one of: %s.",
		table, strings.Join(p.AllowedFormats(), "|"))
}

// human is true for the table and wide.
func (p *printFlags) human() bool {
	o := *p.OutputFormat
	return o == "" || o == "wide"
}

func (p *printFlags) wide() bool { return *p.OutputFormat == "wide" }

// validate rejects an unknown -o before anything is contacted.
func (p *printFlags) validate() error {
	if p.human() {
		return nil
	}
	_, err := p.ToPrinter()
	return err
}

// print prints objects as -o asks: one object alone, several as a v1 List (as kubectl get
// does).
func (p *printFlags) print(w io.Writer, objs []runtime.Object, single bool) error {
	pr, err := p.ToPrinter()
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := setKind(o); err != nil {
			return err
		}
	}
	// One at a time when single, and always by name (a List has no name).
	if (single && len(objs) == 1) || *p.OutputFormat == "name" {
		for _, o := range objs {
			if err := pr.PrintObj(o, w); err != nil {
				return err
			}
		}
		return nil
	}
	return pr.PrintObj(asList(objs), w)
}

// asList is objs as a kubectl List.
func asList(objs []runtime.Object) *corev1.List {
	list := &corev1.List{}
	list.APIVersion, list.Kind = "v1", "List"
	list.Items = []runtime.RawExtension{}
	for _, o := range objs {
		list.Items = append(list.Items, runtime.RawExtension{Object: o})
	}
	return list
}

// setKind sets an object's apiVersion and kind from the fleet's scheme (typed objects come
// back from the client without them); objects that carry theirs keep them.
func setKind(o runtime.Object) error {
	if !o.GetObjectKind().GroupVersionKind().Empty() {
		return nil
	}
	gvk, err := apiutil.GVKForObject(o, app.Scheme())
	if err != nil {
		return err
	}
	o.GetObjectKind().SetGroupVersionKind(gvk)
	return nil
}
