package images

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSourcesAndUnknownName(t *testing.T) {
	if got := strings.Join(Sources(), ","); got != "fashion-mnist,mnist" {
		t.Errorf("Sources() = %s", got)
	}
	for _, n := range Sources() {
		if len(sources[n].sums) != 4 {
			t.Errorf("%s: %d recorded sums, want 4", n, len(sources[n].sums))
		}
	}
	if err := Fetch("imagenet", t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "fashion-mnist, mnist") {
		t.Errorf("unknown source: error %v", err)
	}
}

func TestVerifyMNISTStyleRejectsSmallSets(t *testing.T) {
	dir := t.TempDir()
	writeMNISTDir(t, dir, synthetic(20, 1, 28, 28, 10), synthetic(10, 1, 28, 28, 10), true)
	if err := VerifyMNISTStyle(dir); err == nil || !strings.Contains(err.Error(), "want") {
		t.Errorf("20/10 images accepted as the full set: %v", err)
	}
}

// TestFetchedDataIfPresent checks data fetched into the repository's
// data/cache (git-ignored); it skips when nothing was fetched.
func TestFetchedDataIfPresent(t *testing.T) {
	for _, n := range Sources() {
		dir := filepath.Join("..", "..", "data", "cache", n)
		if _, err := os.Stat(dir); err != nil {
			t.Logf("%s not fetched; skipping", n)
			continue
		}
		if err := checkSums(dir, sources[n].sums); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if err := VerifyMNISTStyle(dir); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// The original-home route downloads the four IDX files from a base URL and
// checks each against the recorded sums (a local server stands in for it).
func TestFetchHomeDownloadsAndChecks(t *testing.T) {
	files := map[string][]byte{}
	sums := map[string]string{}
	for i, f := range idxFiles {
		b := []byte(strings.Repeat(f, 100+i))
		files["/"+f] = b
		s := sha256.Sum256(b)
		sums[f] = hex.EncodeToString(s[:])
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	dst := t.TempDir()
	if err := fetchHome(srv.URL+"/", dst, sums, nil); err != nil {
		t.Fatal(err)
	}
	if err := checkSums(dst, sums); err != nil {
		t.Fatal(err)
	}
	sums[idxFiles[2]] = strings.Repeat("0", 64)
	dst2 := t.TempDir()
	if err := fetchHome(srv.URL+"/", dst2, sums, nil); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("a file that does not match its sum: %v", err)
	}
	// With a home, the route list tries it first, then the registry.
	routes := fetchRoutes("mnist", dst, sources["mnist"], func() error { return nil }, nil)
	if len(routes) != 2 || !strings.Contains(routes[0].Name, "original home") || routes[1].Name != "the package registry" {
		t.Errorf("routes %v", routes)
	}
}
