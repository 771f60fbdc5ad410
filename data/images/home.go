package images

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/vitbert/vitbert/data"
)

// homes are the data sets' own download locations (HTTPS), tried before the
// package-registry route; each file is checked against the source's sums.
var homes = map[string]string{
	"fashion-mnist": "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
	"mnist":         "https://yann.lecun.com/exdb/mnist/",
}

// fetchHome downloads the four IDX files of a source from base into dst.
func fetchHome(base, dst string, sums map[string]string, progress io.Writer) error {
	for _, f := range idxFiles {
		if err := data.Download(context.Background(), nil, base+f, filepath.Join(dst, f), sums[f], progress); err != nil {
			return err
		}
	}
	return nil
}

// fetchRoutes is the original home (when the source has one), then the
// package registry route.
func fetchRoutes(name, dst string, src source, registry func() error, progress io.Writer) []data.Route {
	var routes []data.Route
	if base, ok := homes[name]; ok {
		routes = append(routes, data.Route{Name: fmt.Sprintf("the original home (%s)", base),
			Fetch: func() error { return fetchHome(base, dst, src.sums, progress) }})
	}
	return append(routes, data.Route{Name: "the package registry", Fetch: registry})
}
