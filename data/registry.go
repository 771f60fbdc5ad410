package data

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Fetcher is a data set `vitbert data fetch` can download into a folder of
// its name. A data set package registers each of its fetchers from an init
// function (data/images/fetch.go, data/texts/fetch.go); the CLI lists and
// runs them from here.
type Fetcher struct {
	Name     string
	Modality string // "image" or "text"
	About    string // origin, size and licence, one line
	// Fetch downloads and converts the data set into dataDir/Name;
	// progress may be nil.
	Fetch func(dataDir string, progress io.Writer) error
}

var fetchers []Fetcher

// RegisterFetcher adds a fetcher; a name taken twice is a programming error.
func RegisterFetcher(f Fetcher) {
	if _, ok := LookupFetcher(f.Name); ok {
		panic(fmt.Sprintf("data: fetcher %q registered twice", f.Name))
	}
	fetchers = append(fetchers, f)
	slices.SortStableFunc(fetchers, func(a, b Fetcher) int {
		if c := strings.Compare(a.Modality, b.Modality); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// Fetchers lists the registered fetchers, by modality and then name.
func Fetchers() []Fetcher { return slices.Clone(fetchers) }

// FetcherNames lists the registered fetchers' names, in Fetchers' order.
func FetcherNames() []string {
	names := make([]string, len(fetchers))
	for i, f := range fetchers {
		names[i] = f.Name
	}
	return names
}

// LookupFetcher finds a fetcher by name.
func LookupFetcher(name string) (Fetcher, bool) {
	i := slices.IndexFunc(fetchers, func(f Fetcher) bool { return f.Name == name })
	if i < 0 {
		return Fetcher{}, false
	}
	return fetchers[i], true
}
