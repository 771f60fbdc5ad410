package data_test

import (
	"slices"
	"testing"

	"github.com/vitbert/vitbert/data"
	_ "github.com/vitbert/vitbert/data/images"
	_ "github.com/vitbert/vitbert/data/texts"
)

// Every data set package registers its fetchers, once each, and a name
// registered twice is refused.
func TestFetchersRegistered(t *testing.T) {
	want := []string{"fashion-mnist", "mnist", "brown-genres", "moby-dick", "sotu", "spamassassin"}
	if got := data.FetcherNames(); !slices.Equal(got, want) {
		t.Fatalf("fetchers %v, want %v", got, want)
	}
	for _, n := range want {
		f, ok := data.LookupFetcher(n)
		if !ok || f.Fetch == nil || f.About == "" || (f.Modality != "image" && f.Modality != "text") {
			t.Errorf("fetcher %q: %+v, %v", n, f, ok)
		}
	}
	if _, ok := data.LookupFetcher("imagenet"); ok {
		t.Error("an unregistered name was found")
	}
	defer func() {
		if recover() == nil {
			t.Error("registering mnist twice did not panic")
		}
	}()
	data.RegisterFetcher(data.Fetcher{Name: "mnist", Modality: "image"})
}
