package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"github.com/vitbert/vitbert/safetensors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const fakeCommit = "0123456789abcdef0123456789abcdef01234567"

// fakeHubCache lays out HF_HOME/hub/models--ORG--NAME the way huggingface_hub
// does (blobs named by hash, snapshot files linking to them, refs/main
// holding the commit) with the bert-tiny MLM fixture split into two shards.
func fakeHubCache(t *testing.T, org, name string) (home, snapshot string) {
	t.Helper()
	home = t.TempDir()
	repo := filepath.Join(home, "hub", "models--"+org+"--"+name)
	snapshot = filepath.Join(repo, "snapshots", fakeCommit)
	for _, d := range []string{filepath.Join(repo, "blobs"), filepath.Join(repo, "refs"), snapshot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(fakeCommit), 0o644); err != nil {
		t.Fatal(err)
	}
	src := fixtures + "bert-tiny/mlm/"
	f, err := safetensors.ReadFile(src + "model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	names := f.Names()
	shards := [][]string{names[:len(names)/2], names[len(names)/2:]}
	weightMap := map[string]string{}
	tmp := t.TempDir()
	files := map[string]string{"config.json": src + "config.json"}
	for i, part := range shards {
		shard := []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[i]
		var ts []*safetensors.Tensor
		for _, n := range part {
			ts = append(ts, f.Tensors[n])
			weightMap[n] = shard
		}
		if err := safetensors.WriteFile(filepath.Join(tmp, shard), ts, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
		files[shard] = filepath.Join(tmp, shard)
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": weightMap})
	os.WriteFile(filepath.Join(tmp, "index.json"), idx, 0o644)
	files["model.safetensors.index.json"] = filepath.Join(tmp, "index.json")
	for dst, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		blob := filepath.Join(repo, "blobs", hex.EncodeToString(sum[:]))
		if err := os.WriteFile(blob, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "blobs", filepath.Base(blob)), filepath.Join(snapshot, dst)); err != nil {
			t.Fatal(err)
		}
	}
	return home, snapshot
}

func TestLoadByHubIDFromCache(t *testing.T) {
	home, snapshot := fakeHubCache(t, "test-org", "bert-tiny")
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_HUB_OFFLINE", "1")
	want, err := LoadDir(fixtures + "bert-tiny/mlm")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"test-org/bert-tiny", "test-org/bert-tiny@main", "test-org/bert-tiny@" + fakeCommit} {
		got, err := LoadDir(id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if got.Source != snapshot {
			t.Errorf("%s: loaded from %s, want the snapshot %s", id, got.Source, snapshot)
		}
		if got.Arch != want.Arch {
			t.Errorf("%s: arch %s, want %s", id, got.Arch, want.Arch)
		}
		sameWeights(t, want, got)
	}
}

func TestHubCacheErrors(t *testing.T) {
	home, snapshot := fakeHubCache(t, "test-org", "bert-tiny")
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_HUB_OFFLINE", "1")
	cases := []struct{ id, want string }{
		{"other-org/bert-tiny", "models--other-org--bert-tiny"},
		{"other-org/bert-tiny", filepath.Join(home, "hub")},
		{"other-org/bert-tiny", "HF_HUB_OFFLINE is set"},
		{"other-org/bert-tiny", "does not download"},
		{"test-org/bert-tiny@v2", `revision "v2" is not recorded`},
		{"test-org/bert-tiny@" + strings.Repeat("f", 40), "has no snapshot"},
		{"no/such/dir", "no directory no/such/dir"},
	}
	for _, c := range cases {
		_, err := LoadDir(c.id)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error containing %q, got %v", c.id, c.want, err)
		}
	}
	// A shard missing from the snapshot, and an index that lies about where a tensor is.
	dir := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} {
		b, err := os.ReadFile(filepath.Join(snapshot, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	idxPath := filepath.Join(dir, "model.safetensors.index.json")
	raw, _ := os.ReadFile(idxPath)
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	json.Unmarshal(raw, &idx)
	names := make([]string, 0, len(idx.WeightMap))
	for n := range idx.WeightMap {
		names = append(names, n)
	}
	sort.Strings(names)
	moved := names[0] // in shard 1; claim it is in shard 2
	idx.WeightMap[moved] = "model-00002-of-00002.safetensors"
	lying, _ := json.Marshal(idx)
	os.WriteFile(idxPath, lying, 0o644)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), moved) {
		t.Errorf("index that misplaces %s: got %v", moved, err)
	}
	delete(idx.WeightMap, moved) // the shard holds a tensor the index does not list
	dropped, _ := json.Marshal(idx)
	os.WriteFile(idxPath, dropped, 0o644)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "which the index does not put there") {
		t.Errorf("index that omits %s: got %v", moved, err)
	}
	os.WriteFile(idxPath, raw, 0o644)
	if _, err := LoadDir(dir); err != nil {
		t.Fatalf("the restored sharded directory: %v", err)
	}
	os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors"))
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "model-00002-of-00002.safetensors") {
		t.Errorf("missing shard: got %v", err)
	}
}

func TestPytorchOnlyDirSaysConvert(t *testing.T) {
	dir := copyDir(t, fixtures+"bert-tiny/cls")
	os.Remove(filepath.Join(dir, "model.safetensors"))
	os.WriteFile(filepath.Join(dir, "pytorch_model.bin"), []byte("PK\x03\x04 not read"), 0o644)
	_, err := LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "pytorch_model.bin") || !strings.Contains(err.Error(), "convert them to safetensors") {
		t.Errorf("want a convert-to-safetensors error, got %v", err)
	}
}

func TestHubCacheDirEnv(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", "")
	t.Setenv("XDG_CACHE_HOME", "/x")
	if got := HubCacheDir(); got != "/x/huggingface/hub" {
		t.Errorf("XDG_CACHE_HOME: %s", got)
	}
	t.Setenv("HF_HOME", "/h")
	if got := HubCacheDir(); got != "/h/hub" {
		t.Errorf("HF_HOME: %s", got)
	}
	t.Setenv("HF_HUB_CACHE", "/c")
	if got := HubCacheDir(); got != "/c" {
		t.Errorf("HF_HUB_CACHE: %s", got)
	}
}
