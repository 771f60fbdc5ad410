package texts

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vitbert/vitbert/data"
)

// registryURL is the HTTPS address of an npm package's tarball
// (registry.npmjs.org/NAME/-/BASENAME-VERSION.tgz), read with the data
// package's downloader so that fetching needs no npm.
func registryURL(spec string) (string, error) {
	at := strings.LastIndex(spec, "@")
	if at <= 0 {
		return "", fmt.Errorf("npm spec %q has no version", spec)
	}
	name, version := spec[:at], spec[at+1:]
	base := name[strings.LastIndex(name, "/")+1:]
	return "https://registry.npmjs.org/" + name + "/-/" + base + "-" + version + ".tgz", nil
}

// downloadHTTPS fetches t into dir over HTTPS, resuming and checking it.
func downloadHTTPS(t npmTarball, dir string, progress io.Writer) error {
	url, err := registryURL(t.spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return data.Download(context.Background(), nil, url, filepath.Join(dir, t.file), t.sha256, progress)
}
