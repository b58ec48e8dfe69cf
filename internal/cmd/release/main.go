// Command release assembles the hub image of a release from hub binaries built for each
// platform, and writes the release's checksums; `make release` runs it after building the
// binaries and packaging the chart into the same folder.
//
//	release --dist dist --version v1.2.3 --hub linux/amd64=dist/.build/hub-linux-amd64 --hub linux/arm64=...
//
// It writes, in --dist: hub-oci/ (an OCI image layout holding the multi-platform index),
// hub-VERSION-OS-ARCH.docker.tar for each platform (for `docker load`), and SHA256SUMS.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/inferfleet/inferfleet/internal/release"
)

type hubFlag map[string]string

func (h hubFlag) String() string { return fmt.Sprint(map[string]string(h)) }
func (h hubFlag) Set(s string) error {
	p, path, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want PLATFORM=PATH, got %q", s)
	}
	if _, err := v1.ParsePlatform(p); err != nil {
		return err
	}
	h[p] = path
	return nil
}

func main() {
	hubs := hubFlag{}
	dist := flag.String("dist", "dist", "The release folder.")
	version := flag.String("version", "", "The release's version, as stamped into the binaries (v1.2.3).")
	revision := flag.String("revision", "", "The git commit the release is built from.")
	repo := flag.String("repository", "inferfleet/hub", "The image repository the archives and the layout name.")
	flag.Var(hubs, "hub", "PLATFORM=PATH: the hub binary built for PLATFORM (linux/amd64); repeat for each platform.")
	flag.Parse()
	if err := run(*dist, *version, *revision, *repo, hubs); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(dist, version, revision, repo string, hubs map[string]string) error {
	if version == "" || len(hubs) == 0 {
		return fmt.Errorf("--version and at least one --hub are required")
	}
	tag, err := name.NewTag(repo + ":" + version)
	if err != nil {
		return fmt.Errorf("--repository %q with --version %q: %w", repo, version, err)
	}
	meta := release.ImageMeta{Version: version, Revision: revision}
	// SOURCE_DATE_EPOCH, as reproducible builds define it, dates the image and its layers.
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
		meta.Created = time.Unix(sec, 0).UTC()
	}
	idx, err := release.HubIndex(hubs, meta)
	if err != nil {
		return err
	}
	layoutDir := filepath.Join(dist, "hub-oci")
	if err := os.RemoveAll(layoutDir); err != nil {
		return err
	}
	if err := release.WriteLayout(layoutDir, idx, tag); err != nil {
		return err
	}
	fmt.Printf("%s: %s (%d platforms)\n", layoutDir, tag, len(hubs))
	for p, bin := range hubs {
		platform, _ := v1.ParsePlatform(p)
		img, err := release.HubImage(bin, *platform, meta)
		if err != nil {
			return err
		}
		out := filepath.Join(dist, fmt.Sprintf("hub-%s-%s-%s.docker.tar", version, platform.OS, platform.Architecture))
		if err := release.WriteDockerArchive(out, tag, img); err != nil {
			return err
		}
		fmt.Printf("%s: %s for %s\n", out, tag, p)
	}
	if err := release.WriteChecksums(dist); err != nil {
		return err
	}
	fmt.Println(filepath.Join(dist, release.ChecksumsFile))
	return nil
}
